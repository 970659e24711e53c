// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Base} from "./Base.t.sol";
import {MerkleBuilder} from "./utils/MerkleBuilder.sol";
import {FederatedRewards} from "../src/FederatedRewards.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @dev Property tests over random inputs (runs in foundry.toml).
contract FuzzTest is Base {
    uint256 internal constant MAX = type(uint112).max;
    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    /// createTask accepts exactly the valid parameters, and stores what it accepted.
    function testFuzz_createTaskValidation(
        uint256 pool,
        uint256 minStake,
        uint256 cap,
        uint64 window,
        uint64 unbonding,
        uint64 endOffset,
        uint64 deadlineOffset,
        bool zeroSpec
    ) public {
        pool = bound(pool, 0, MAX + 1);
        minStake = bound(minStake, 0, MAX + 1);
        cap = bound(cap, 0, MAX + 1);
        FederatedRewards.TaskParams memory p = defaultParams();
        p.specHash = zeroSpec ? bytes32(0) : keccak256("spec");
        p.pool = pool;
        p.minStake = minStake;
        p.roundBudgetCap = cap;
        // ranges straddle every limit, so valid and invalid parameters both come up often
        window = uint64(bound(window, 0, 3650 days + 1));
        unbonding = uint64(bound(unbonding, 0, 3650 days + 1));
        p.challengeWindow = window;
        p.unbondingPeriod = unbonding;
        p.endTime = uint64(bound(endOffset, 0, 3650 days + 1)) + uint64(block.timestamp);
        p.claimDeadline = p.endTime + uint64(bound(deadlineOffset, 0, 3650 days + 1));

        bool valid = !zeroSpec && pool > 0 && pool <= MAX && cap > 0 && cap <= MAX && minStake <= MAX && window > 0
            && window <= 3650 days && unbonding <= 3650 days && p.endTime > block.timestamp
            && p.endTime <= block.timestamp + 3650 days && uint256(p.claimDeadline) >= uint256(p.endTime) + window
            && uint256(p.claimDeadline) <= uint256(p.endTime) + 3650 days;

        token.mint(sponsor, pool);
        vm.startPrank(sponsor);
        token.approve(address(rewards), pool);
        if (!valid) vm.expectRevert();
        uint256 taskId = rewards.createTask(p);
        vm.stopPrank();
        if (valid) {
            FederatedRewards.TaskView memory v = rewards.getTask(taskId);
            assertEq(v.initialPool, pool, "pool");
            assertEq(v.minStake, minStake, "min stake");
            assertEq(v.roundBudgetCap, cap, "cap");
            assertEq(v.challengeWindow, window, "window");
            assertEq(v.unbondingPeriod, unbonding, "unbonding");
            assertEq(v.endTime, p.endTime, "end");
            assertEq(v.claimDeadline, p.claimDeadline, "deadline");
            assertEq(token.balanceOf(address(rewards)), pool, "escrowed");
        }
    }

    /// Stake, unstake and withdraw conserve tokens and respect the minimum and the unbonding period.
    function testFuzz_stakeUnstakeWithdraw(uint256 amount, uint256 unstake, uint256 wait) public {
        uint256 taskId = createTask();
        amount = bound(amount, MIN_STAKE, 1e30);
        unstake = bound(unstake, 1, amount);
        wait = bound(wait, 0, 2 * UNBONDING);
        doStake(taskId, alice, amount);

        uint256 rest = amount - unstake;
        vm.prank(alice);
        if (rest != 0 && rest < MIN_STAKE) {
            vm.expectRevert(abi.encodeWithSelector(FederatedRewards.StakeBelowMinimum.selector, rest, MIN_STAKE));
            rewards.requestUnstake(taskId, unstake);
            return;
        }
        rewards.requestUnstake(taskId, unstake);
        vm.warp(block.timestamp + wait);
        vm.prank(alice);
        if (wait < UNBONDING) vm.expectRevert();
        rewards.withdraw(taskId);
        (uint256 active, uint256 unbonding) = stakeOf(taskId, alice);
        assertEq(active, rest, "active");
        assertEq(unbonding, wait < UNBONDING ? unstake : 0, "unbonding");
        assertEq(token.balanceOf(alice) + active + unbonding, amount, "conserved");
        assertEq(token.balanceOf(address(rewards)), POOL + active + unbonding, "held");
    }

    /// Over several rounds with random payouts and claims at random times, every account ends up
    /// with exactly its cumulative amount and the contract keeps exactly the rest.
    function testFuzz_cumulativeClaims(uint64[12] memory incs, uint8 claimMask) public {
        uint256 taskId = createTask();
        uint256[3] memory cum;
        bytes32[] memory tree;
        uint256 posted;
        for (uint256 r = 0; r < 4; r++) {
            uint256 total;
            for (uint256 a = 0; a < 3; a++) {
                uint256 inc = bound(incs[r * 3 + a], 0, CAP / 3);
                cum[a] += inc;
                total += inc;
            }
            (tree,,) = tree3(cum[0], cum[1], cum[2]);
            post(taskId, uint64(r + 1), tree[0], total);
            posted += total;
            vm.warp(block.timestamp + WINDOW);
            // claim now for the accounts whose bit is set in this round's nibble
            address[3] memory who = [alice, bob, carol];
            for (uint256 a = 0; a < 3; a++) {
                if ((claimMask >> ((r * 3 + a) % 8)) & 1 == 1 && cum[a] > rewards.claimed(taskId, who[a])) {
                    rewards.claim(taskId, who[a], cum[a], proofOf(tree, who[a], cum[a]));
                }
            }
        }
        address[3] memory all = [alice, bob, carol];
        for (uint256 a = 0; a < 3; a++) {
            if (cum[a] > rewards.claimed(taskId, all[a])) {
                rewards.claim(taskId, all[a], cum[a], proofOf(tree, all[a], cum[a]));
            }
            assertEq(token.balanceOf(all[a]), cum[a], "paid its cumulative amount");
        }
        assertEq(token.balanceOf(address(rewards)), POOL - posted, "the rest stays");
        FederatedRewards.TaskView memory v = rewards.getTask(taskId);
        assertEq(v.claimedTotal, posted, "claimed");
        assertEq(v.finalizedTotal, posted, "finalized");
    }

    /// A slash takes active stake first, then unbonding, capped at what there is; a veto puts
    /// back exactly where it came from, finalization moves exactly it to the pool.
    function testFuzz_slashSplitVetoFinalize(uint256 stake_, uint256 unstake, uint256 amount, bool vetoIt) public {
        uint256 taskId = createTask();
        stake_ = bound(stake_, MIN_STAKE, 1e27);
        unstake = bound(unstake, 0, stake_);
        if (stake_ - unstake != 0 && stake_ - unstake < MIN_STAKE) unstake = stake_;
        amount = bound(amount, 1, 2e27);
        doStake(taskId, alice, stake_);
        if (unstake > 0) {
            vm.prank(alice);
            rewards.requestUnstake(taskId, unstake);
        }
        uint256 active0 = stake_ - unstake;
        FederatedRewards.Evidence memory e = evidence(ALICE_PK, taskId, 1, 0, keccak256("u"));
        vm.prank(coordinator);
        bytes32 id = rewards.slash(taskId, alice, 1, amount, e);

        uint256 taken = amount < stake_ ? amount : stake_;
        uint256 fromActive = taken < active0 ? taken : active0;
        (uint256 active, uint256 unbonding) = stakeOf(taskId, alice);
        assertEq(active, active0 - fromActive, "active first");
        assertEq(unbonding, unstake - (taken - fromActive), "then unbonding");
        (,, uint256 recorded,) = rewards.slashInfo(taskId, id);
        assertEq(recorded, taken, "capped");

        if (vetoIt) {
            vm.prank(arbiter);
            rewards.vetoSlash(taskId, id);
            (active, unbonding) = stakeOf(taskId, alice);
            assertEq(active, active0, "active restored");
            assertEq(unbonding, unstake, "unbonding restored");
            assertEq(rewards.getTask(taskId).poolRemaining, POOL, "pool unchanged");
        } else {
            vm.warp(block.timestamp + WINDOW);
            rewards.finalizeSlash(taskId, id);
            assertEq(rewards.getTask(taskId).poolRemaining, POOL + taken, "to the pool");
        }
        assertEq(token.balanceOf(address(rewards)), POOL + stake_, "no token moved");
    }

    /// The contract accepts a client's signature over exactly its submission and nothing else.
    function testFuzz_signatureBindsEveryField(
        uint256 pk,
        uint64 round,
        uint32 attempt,
        bytes32 updateHash,
        uint8 which,
        uint256 delta
    ) public {
        pk = bound(pk, 1, SECP256K1_N - 1);
        address client = vm.addr(pk);
        vm.assume(client != address(0));
        uint256 taskId = createTask();
        doStake(taskId, client, MIN_STAKE);
        FederatedRewards.Evidence memory e = evidence(pk, taskId, round, attempt, updateHash);
        uint64 slashRound = round;
        address slashed = client;
        which %= 5;
        delta = bound(delta, 1, type(uint32).max);
        if (which == 1) slashRound = round ^ uint64(delta);
        else if (which == 2) e.attempt = attempt ^ uint32(delta);
        else if (which == 3) e.updateHash = updateHash ^ bytes32(delta);
        else if (which == 4) slashed = address(uint160(client) ^ uint160(delta));
        vm.prank(coordinator);
        if (which != 0) vm.expectRevert(FederatedRewards.InvalidSignature.selector);
        rewards.slash(taskId, slashed, slashRound, 1, e);
    }

    /// postRound accepts a total iff it fits the cap and the unreserved pool, and reserves it.
    function testFuzz_postRoundBounds(uint256 pool, uint256 cap, uint256 first, uint256 second) public {
        pool = bound(pool, 1, 1e30);
        cap = bound(cap, 1, 1e30);
        first = bound(first, 0, pool < cap ? pool : cap);
        second = bound(second, 0, 2e30);
        FederatedRewards.TaskParams memory p = defaultParams();
        p.pool = pool;
        p.roundBudgetCap = cap;
        uint256 taskId = createTask(p);
        post(taskId, 1, keccak256("r1"), first);
        vm.prank(coordinator);
        if (second > cap) {
            vm.expectRevert(abi.encodeWithSelector(FederatedRewards.RoundBudgetExceeded.selector, second, cap));
        } else if (second > pool - first) {
            vm.expectRevert(abi.encodeWithSelector(FederatedRewards.InsufficientPool.selector, second, pool - first));
        }
        rewards.postRound(taskId, 2, 0, keccak256("r2"), second);
        FederatedRewards.TaskView memory v = rewards.getTask(taskId);
        assertEq(v.poolRemaining + v.postedTotal, pool, "reserved from the pool");
    }

    /// Vetoing round k of n pending rounds refunds exactly the totals of rounds k..n, leaves
    /// 1..k-1 pending, and later rounds can be posted with higher numbers only.
    function testFuzz_vetoCascade(uint8 n, uint8 k, uint256 seed) public {
        n = uint8(bound(n, 1, 12));
        k = uint8(bound(k, 1, n));
        uint256 taskId = createTask();
        uint256[] memory totals = new uint256[](n);
        uint256 refund;
        for (uint256 i = 0; i < n; i++) {
            totals[i] = uint256(keccak256(abi.encode(seed, i))) % CAP;
            post(taskId, uint64(i + 1) * 2, keccak256(abi.encode("root", i)), totals[i]);
            vm.warp(block.timestamp + WINDOW / (2 * n));
            if (i + 1 >= k) refund += totals[i];
        }
        uint256 poolBefore = rewards.getTask(taskId).poolRemaining;
        vm.prank(arbiter);
        rewards.veto(taskId, uint64(k) * 2);
        assertEq(rewards.getTask(taskId).poolRemaining, poolBefore + refund, "refund");
        for (uint256 i = 0; i < n; i++) {
            FederatedRewards.RoundStatus s = status(taskId, uint64(i + 1) * 2);
            if (i + 1 < k) assertTrue(s == FederatedRewards.RoundStatus.Pending, "earlier pending");
            else assertTrue(s == FederatedRewards.RoundStatus.Vetoed, "later vetoed");
        }
        vm.prank(coordinator);
        vm.expectRevert(
            abi.encodeWithSelector(FederatedRewards.RoundNotIncreasing.selector, uint64(n) * 2, uint64(n) * 2)
        );
        rewards.postRound(taskId, uint64(n) * 2, 0, keccak256("again"), 1);
        post(taskId, uint64(n) * 2 + 1, keccak256("again"), 1);
        assertTrue(status(taskId, uint64(n) * 2 + 1) == FederatedRewards.RoundStatus.Pending, "reposted");
    }

    /// Finalization by binary search agrees with a linear scan at any time, for rounds posted
    /// at random times.
    function testFuzz_finalizationMatchesScan(uint8 n, uint256 seed, uint256 probe) public {
        n = uint8(bound(n, 1, 30));
        uint256 taskId = createTask();
        uint64[] memory finalAts = new uint64[](n);
        for (uint256 i = 0; i < n; i++) {
            vm.warp(block.timestamp + uint256(keccak256(abi.encode(seed, i))) % (WINDOW / 3));
            post(taskId, uint64(i + 1), keccak256(abi.encode(i)), 1);
            finalAts[i] = uint64(block.timestamp) + WINDOW;
        }
        vm.warp(block.timestamp + bound(probe, 0, 2 * WINDOW));
        uint256 expected;
        for (uint256 i = 0; i < n; i++) {
            if (finalAts[i] <= block.timestamp) expected = i + 1;
        }
        assertEq(rewards.getTask(taskId).latestFinalRound, expected, "view");
        if (probe % 2 == 0) {
            assertEq(rewards.finalizeRounds(taskId), expected, "written");
            assertEq(rewards.getTask(taskId).finalizedTotal, expected, "total");
        }
    }

    /// Trees built like StandardMerkleTree verify with OpenZeppelin's MerkleProof for every leaf,
    /// and every account of a random cohort can claim exactly its amount.
    function testFuzz_merkleCohortClaims(uint8 n, uint256 seed) public {
        n = uint8(bound(n, 1, 40));
        address[] memory accounts = new address[](n);
        uint256[] memory amounts = new uint256[](n);
        uint256 total;
        for (uint256 i = 0; i < n; i++) {
            accounts[i] = address(uint160(uint256(keccak256(abi.encode(seed, "acct", i)))));
            amounts[i] = uint256(keccak256(abi.encode(seed, "amt", i))) % (CAP / 40);
            total += amounts[i];
        }
        bytes32[] memory tree = MerkleBuilder.build(accounts, amounts);
        uint256 taskId = createTask();
        post(taskId, 1, tree[0], total);
        vm.warp(block.timestamp + WINDOW);
        for (uint256 i = 0; i < n; i++) {
            bytes32[] memory proof = MerkleBuilder.proof(tree, accounts[i], amounts[i]);
            assertTrue(
                MerkleProof.verify(proof, tree[0], MerkleBuilder.leaf(accounts[i], amounts[i])), "OZ verifies"
            );
            if (amounts[i] > 0) rewards.claim(taskId, accounts[i], amounts[i], proof);
            assertEq(token.balanceOf(accounts[i]), amounts[i], "paid");
        }
        assertEq(rewards.getTask(taskId).claimedTotal, total, "all claimed");
    }

    /// Whatever is posted, claimed, vetoed and slashed, the sponsor gets back exactly what was
    /// not paid out, once the claim deadline has passed.
    function testFuzz_reclaimReturnsTheRest(uint256 t1, uint256 t2, uint256 claimA, bool vetoSecond, uint256 slashAmt)
        public
    {
        uint256 taskId = createTask();
        FederatedRewards.TaskParams memory p = defaultParams();
        t1 = bound(t1, 0, CAP);
        t2 = bound(t2, 0, CAP);
        slashAmt = bound(slashAmt, 0, 500e18);
        claimA = bound(claimA, 0, t1);
        if (slashAmt > 0) {
            doStake(taskId, bob, 500e18);
            FederatedRewards.Evidence memory e = evidence(BOB_PK, taskId, 1, 0, keccak256("u"));
            vm.prank(coordinator);
            bytes32 id = rewards.slash(taskId, bob, 1, slashAmt, e);
            vm.warp(block.timestamp + WINDOW);
            rewards.finalizeSlash(taskId, id);
        }
        (bytes32[] memory tree,,) = tree3(claimA, t1 - claimA, 0);
        post(taskId, 1, tree[0], t1);
        (bytes32[] memory tree2,,) = tree3(claimA, t1 - claimA + t2, 0);
        post(taskId, 2, tree2[0], t2);
        if (vetoSecond) {
            vm.prank(arbiter);
            rewards.veto(taskId, 2);
        }
        vm.warp(block.timestamp + WINDOW);
        if (claimA > 0) rewards.claim(taskId, alice, claimA, proofOf(vetoSecond ? tree : tree2, alice, claimA));

        vm.warp(p.endTime);
        vm.prank(sponsor);
        rewards.reclaim(taskId);
        uint256 paidLater = vetoSecond ? t1 - claimA : t1 - claimA + t2;
        assertEq(token.balanceOf(sponsor), POOL + slashAmt - claimA - paidLater, "unreserved pool at the end");
        vm.warp(p.claimDeadline);
        vm.prank(sponsor);
        if (paidLater == 0) vm.expectRevert(FederatedRewards.NothingToReclaim.selector);
        rewards.reclaim(taskId);
        assertEq(token.balanceOf(sponsor), POOL + slashAmt - claimA, "everything unclaimed after the deadline");
        assertEq(token.balanceOf(address(rewards)), 500e18 * (slashAmt > 0 ? 1 : 0) - slashAmt, "only stake left");
    }
}
