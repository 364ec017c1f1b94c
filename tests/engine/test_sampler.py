"""DistributedIdentitySampler: disjoint identity shards, exact P x K batches, lockstep lengths."""

from __future__ import annotations

from collections import Counter

import pytest

from torchreid_pgflkd.engine.sampler import DistributedIdentitySampler

K = 4
BATCH = 12  # P = 3 identities x K = 4 images


def make_data(num_pids: int = 24) -> list[tuple[str, int, int, int]]:
    """torchreid samples with 1..9 images per identity, so some have fewer than K."""
    data = []
    for pid in range(num_pids):
        for j in range(1 + pid % 9):
            data.append((f"img_{pid}_{j}.jpg", pid, j % 2, 0))
    return data


def batches(sampler: DistributedIdentitySampler) -> list[list[int]]:
    idx = list(sampler)
    assert len(idx) == len(sampler)
    assert len(idx) % sampler.batch_size == 0
    return [idx[i : i + sampler.batch_size] for i in range(0, len(idx), sampler.batch_size)]


def pids_of(data, indices) -> set[int]:
    return {data[i][1] for i in indices}


def test_ranks_get_disjoint_identities_and_equal_lengths_every_epoch():
    data = make_data()
    samplers = [
        DistributedIdentitySampler(data, BATCH, K, num_replicas=2, rank=r, seed=7) for r in (0, 1)
    ]
    for epoch in range(3):
        seen = []
        for s in samplers:
            s.set_epoch(epoch)
            idx = list(s)
            assert pids_of(data, idx) <= set(s.shard())
            seen.append(pids_of(data, idx))
        assert not seen[0] & seen[1], f"epoch {epoch}: ranks share identities"
        assert set(samplers[0].shard()) | set(samplers[1].shard()) == set(range(24))
        assert len(list(samplers[0])) == len(list(samplers[1])) == len(samplers[0]) > 0


def test_every_batch_is_p_identities_times_k_images():
    data = make_data()
    for rank in (0, 1):
        sampler = DistributedIdentitySampler(data, BATCH, K, num_replicas=2, rank=rank, seed=3)
        for batch in batches(sampler):
            counts = Counter(data[i][1] for i in batch)
            assert len(counts) == BATCH // K
            assert set(counts.values()) == {K}
            for start in range(0, BATCH, K):  # each identity's K images are contiguous
                assert len(pids_of(data, batch[start : start + K])) == 1


def test_identity_with_too_few_images_is_drawn_with_replacement():
    data = make_data()
    sampler = DistributedIdentitySampler(data, BATCH, K, num_replicas=1, rank=0, seed=0)
    single = [i for i, item in enumerate(data) if item[1] == 0]  # pid 0 has one image
    assert len(single) == 1
    found = []
    for epoch in range(4):  # a few groups are left over each epoch, so look over several
        sampler.set_epoch(epoch)
        found += [b for b in batches(sampler) if single[0] in b]
    assert found and all(b.count(single[0]) == K for b in found)


def test_deterministic_given_seed_epoch_rank_and_epochs_differ():
    data = make_data()

    def order(seed: int, epoch: int, rank: int) -> list[int]:
        s = DistributedIdentitySampler(data, BATCH, K, num_replicas=2, rank=rank, seed=seed)
        s.set_epoch(epoch)
        return list(s)

    assert order(5, 2, 1) == order(5, 2, 1)
    assert order(5, 2, 1) != order(5, 3, 1)
    assert order(5, 2, 1) != order(6, 2, 1)
    assert order(5, 2, 0) != order(5, 2, 1)


def test_single_replica_covers_all_identities_like_torchreid():
    data = make_data()
    sampler = DistributedIdentitySampler(data, BATCH, K, seed=1)  # no process group: world 1
    assert (sampler.num_replicas, sampler.rank) == (1, 0)
    groups = sum(max(1 + pid % 9, K) // K for pid in range(24))
    assert len(sampler) == (groups // (BATCH // K)) * BATCH
    used = set()
    for epoch in range(3):
        sampler.set_epoch(epoch)
        used |= pids_of(data, list(sampler))
        # fewer than P groups are left over, so at most P - 1 identities miss an epoch
        assert len(pids_of(data, list(sampler))) >= 24 - (BATCH // K - 1)
    assert used == set(range(24))


def test_bad_arguments_name_the_problem():
    data = make_data()
    with pytest.raises(ValueError, match="multiple of num_instances"):
        DistributedIdentitySampler(data, 10, K)
    with pytest.raises(ValueError, match="identities cannot give each of 4 ranks"):
        DistributedIdentitySampler(make_data(8), BATCH, K, num_replicas=4, rank=0)
    with pytest.raises(ValueError, match="rank=2"):
        DistributedIdentitySampler(data, BATCH, K, num_replicas=2, rank=2)
