// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Cheats} from "../utils/Test.sol";
import {MerkleBuilder} from "../utils/MerkleBuilder.sol";
import {FederatedRewards} from "../../src/FederatedRewards.sol";
import {TestToken} from "../../src/TestToken.sol";

/// @dev Drives FederatedRewards through random sequences of every action, by every role, on
/// two tasks with different windows, and keeps a model of what should be true: the live and
/// vetoed rounds with their cumulative trees, every token that went in and out, every slash.
/// Actions that should fail are attempted too; if one succeeds a flag is raised for the
/// invariants to report.
contract Handler is Cheats {
    uint256 internal constant NA = 4; // accounts: clients and payees
    uint256 internal constant NT = 2; // tasks

    struct MPost {
        uint64 round;
        uint64 finalAt;
        uint256 total;
        bytes32 root;
        uint256[NA] cum;
    }

    struct MSlash {
        uint256 task;
        bytes32 id;
    }

    FederatedRewards public immutable rewards;
    TestToken public immutable token;
    address public immutable sponsor;
    address public immutable coordinator;
    address public immutable arbiter;

    uint256[NA] internal pks;
    address[NA] public actors;
    uint256[NT] public taskIds;

    mapping(uint256 => MPost[]) internal live;
    mapping(uint256 => MPost[]) internal vetoed;
    mapping(uint256 => uint64) public lastRound;
    MSlash[] internal slashes;

    // token flows through the contract
    uint256 public deposited;
    uint256 public paidOut;

    // flags: an action that must fail succeeded
    bool public unauthorizedPostSucceeded;
    bool public unauthorizedActionSucceeded;
    bool public lateVetoSucceeded;
    bool public claimWithoutFinalRound;
    bool public overclaim;
    bool public paidMoreThanDifference;
    bool public earlyWithdraw;
    bool public slashFinalEarly;
    bool public slashVetoedLate;

    // call counters, to see the campaign did something
    mapping(bytes32 => uint256) public calls;

    constructor(FederatedRewards rewards_, TestToken token_) {
        rewards = rewards_;
        token = token_;
        sponsor = makeAddr("inv-sponsor");
        coordinator = makeAddr("inv-coordinator");
        arbiter = makeAddr("inv-arbiter");
        for (uint256 i = 0; i < NA; i++) {
            pks[i] = 0x1001 + i;
            actors[i] = vm.addr(pks[i]);
        }
        // two short tasks, so a campaign of a few calls crosses windows, ends and claim deadlines:
        // a short window without unbonding delay, and a long window with a day of unbonding
        taskIds[0] = _create(50_000e18, 10e18, 5_000e18, 1 hours, 0, 2 days, 1 days);
        taskIds[1] = _create(20_000e18, 100e18, 2_000e18, 12 hours, 1 days, 3 days, 2 days);
    }

    function _create(
        uint256 pool,
        uint256 minStake,
        uint256 cap,
        uint64 window,
        uint64 unbonding,
        uint64 duration,
        uint64 claimPeriod
    ) internal returns (uint256 id) {
        FederatedRewards.TaskParams memory p;
        p.specHash = keccak256(abi.encode("spec", pool));
        p.token = address(token);
        p.coordinator = coordinator;
        p.arbiter = arbiter;
        p.pool = pool;
        p.minStake = minStake;
        p.roundBudgetCap = cap;
        p.challengeWindow = window;
        p.unbondingPeriod = unbonding;
        p.endTime = uint64(block.timestamp) + duration;
        p.claimDeadline = p.endTime + window + claimPeriod;
        token.mint(sponsor, pool);
        vm.startPrank(sponsor);
        token.approve(address(rewards), pool);
        id = rewards.createTask(p);
        vm.stopPrank();
        deposited += pool;
    }

    // ------------------------------------------------------------------ model helpers

    function task(uint256 t) public view returns (uint256) {
        return taskIds[t];
    }

    function liveCount(uint256 t) external view returns (uint256) {
        return live[t].length;
    }

    function liveAt(uint256 t, uint256 i) external view returns (uint64 round, uint64 finalAt, uint256 total, bytes32 root) {
        MPost storage p = live[t][i];
        return (p.round, p.finalAt, p.total, p.root);
    }

    function vetoedCount(uint256 t) external view returns (uint256) {
        return vetoed[t].length;
    }

    function vetoedRound(uint256 t, uint256 i) external view returns (uint64) {
        return vetoed[t][i].round;
    }

    function slashCount() external view returns (uint256) {
        return slashes.length;
    }

    function slashAt(uint256 i) external view returns (uint256, bytes32) {
        return (slashes[i].task, slashes[i].id);
    }

    /// @dev Index + 1 of the latest live posting final now (0 if none).
    function finalIndex(uint256 t) public view returns (uint256) {
        MPost[] storage ps = live[t];
        for (uint256 i = ps.length; i > 0; i--) {
            if (ps[i - 1].finalAt <= block.timestamp) return i;
        }
        return 0;
    }

    /// @dev Cumulative amount of `a` in the latest final live posting (0 if none).
    function finalCum(uint256 t, uint256 a) public view returns (uint256) {
        uint256 fi = finalIndex(t);
        return fi == 0 ? 0 : live[t][fi - 1].cum[a];
    }

    /// @dev Sum of the totals of live postings that are final now.
    function finalTotal(uint256 t) external view returns (uint256 sum) {
        uint256 fi = finalIndex(t);
        for (uint256 i = 0; i < fi; i++) {
            sum += live[t][i].total;
        }
    }

    function _tree(uint256[NA] memory cum) internal view returns (bytes32[] memory) {
        address[] memory accounts = new address[](NA);
        uint256[] memory amounts = new uint256[](NA);
        for (uint256 i = 0; i < NA; i++) {
            accounts[i] = actors[i];
            amounts[i] = cum[i];
        }
        return MerkleBuilder.build(accounts, amounts);
    }

    function _sign(uint256 a, uint256 taskId, uint64 round, uint32 attempt, bytes32 h)
        internal
        view
        returns (bytes memory)
    {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pks[a], rewards.hashSubmission(taskId, round, attempt, h));
        return abi.encodePacked(r, s, v);
    }

    // ------------------------------------------------------------------ actions

    /// @dev Warp to just before, at or just after an edge: a posting's or a slash's end of
    /// window, the end of a task or its claim deadline.
    function warpToEdge(uint256 ts, uint256 which, uint256 is_, uint256 offset) external {
        uint256 t = ts % NT;
        uint256 target;
        which %= 4;
        if (which == 0) {
            if (live[t].length == 0) return;
            target = live[t][is_ % live[t].length].finalAt;
        } else if (which == 1) {
            if (slashes.length == 0) return;
            (,,, uint64 finalAt) = rewards.slashInfo(taskIds[slashes[is_ % slashes.length].task], slashes[is_ % slashes.length].id);
            target = finalAt;
        } else if (which == 2) {
            target = rewards.getTask(taskIds[t]).endTime;
        } else {
            target = rewards.getTask(taskIds[t]).claimDeadline;
        }
        target = target + (offset % 3) - 1; // edge - 1, edge, edge + 1
        if (target > block.timestamp) {
            vm.warp(target);
            calls["warpToEdge"]++;
        }
    }

    /// @dev Someone who is not the arbiter, coordinator or sponsor tries their actions.
    function unauthorized(uint256 ts, uint256 is_, uint256 who, uint256 what) external {
        uint256 t = ts % NT;
        uint256 taskId = taskIds[t];
        address caller = who % 2 == 0 ? actors[who % NA] : (what % 2 == 0 ? coordinator : sponsor);
        what %= 4;
        vm.startPrank(caller);
        if (what == 0 && live[t].length > 0) {
            try rewards.veto(taskId, live[t][is_ % live[t].length].round) {
                unauthorizedActionSucceeded = true;
            } catch {}
        } else if (what == 1 && slashes.length > 0) {
            MSlash storage s = slashes[is_ % slashes.length];
            try rewards.vetoSlash(taskIds[s.task], s.id) {
                unauthorizedActionSucceeded = true;
            } catch {}
        } else if (what == 2 && caller != sponsor) {
            try rewards.reclaim(taskId) {
                unauthorizedActionSucceeded = true;
            } catch {}
        } else if (what == 3 && caller != coordinator) {
            uint256 a = is_ % NA;
            FederatedRewards.Evidence memory e;
            e.updateHash = keccak256("u");
            e.verdictCode = 1;
            e.signature = _sign(a, taskId, 1, 0, e.updateHash);
            try rewards.slash(taskId, actors[a], 1, 1e18, e) {
                unauthorizedActionSucceeded = true;
            } catch {}
        }
        vm.stopPrank();
        calls["unauthorized"]++;
    }

    function warp(uint256 secs) external {
        calls["warp"]++;
        vm.warp(block.timestamp + bound(secs, 1, 1 days));
    }

    function stake(uint256 ts, uint256 as_, uint256 amount) external {
        uint256 t = ts % NT;
        address who = actors[as_ % NA];
        amount = bound(amount, 1, 2_000e18);
        token.mint(who, amount);
        vm.startPrank(who);
        token.approve(address(rewards), amount);
        try rewards.stake(taskIds[t], amount) {
            deposited += amount;
            calls["stake"]++;
        } catch {}
        vm.stopPrank();
    }

    /// @dev An account with stake in task t (active, or unbonding if `unbonding`), starting the
    /// search at `seed`, so stake actions mostly hit accounts they can act on.
    function _staker(uint256 t, uint256 seed, bool unbonding) internal view returns (uint256) {
        for (uint256 k = 0; k < NA; k++) {
            uint256 a = (seed % NA + k) % NA;
            (uint256 active, uint256 unb,) = rewards.stakeOf(taskIds[t], actors[a]);
            if ((unbonding ? unb : active) > 0) return a;
        }
        return seed % NA;
    }

    function requestUnstake(uint256 ts, uint256 as_, uint256 amount) external {
        uint256 t = ts % NT;
        address who = actors[_staker(t, as_, false)];
        (uint256 active,,) = rewards.stakeOf(taskIds[t], who);
        amount = bound(amount, 1, active + 1);
        vm.prank(who);
        try rewards.requestUnstake(taskIds[t], amount) {
            calls["requestUnstake"]++;
        } catch {}
    }

    /// @dev Request an unstake and try to withdraw at once (must fail unless the period is 0).
    function unstakeThenWithdraw(uint256 ts, uint256 as_, uint256 amount) external {
        uint256 t = ts % NT;
        address who = actors[_staker(t, as_, false)];
        (uint256 active,,) = rewards.stakeOf(taskIds[t], who);
        if (active == 0) return;
        vm.prank(who);
        try rewards.requestUnstake(taskIds[t], bound(amount, 1, active)) {} catch {}
        (,, uint64 unlockAt) = rewards.stakeOf(taskIds[t], who);
        uint256 before = token.balanceOf(who);
        vm.prank(who);
        try rewards.withdraw(taskIds[t]) {
            if (block.timestamp < unlockAt) earlyWithdraw = true;
            paidOut += token.balanceOf(who) - before;
            calls["withdraw"]++;
        } catch {}
    }

    function withdraw(uint256 ts, uint256 as_) external {
        uint256 t = ts % NT;
        address who = actors[_staker(t, as_, true)];
        uint256 before = token.balanceOf(who);
        (,, uint64 unlockAt) = rewards.stakeOf(taskIds[t], who);
        vm.prank(who);
        try rewards.withdraw(taskIds[t]) {
            if (block.timestamp < unlockAt) earlyWithdraw = true;
            paidOut += token.balanceOf(who) - before;
            calls["withdraw"]++;
        } catch {}
    }

    /// @dev The coordinator posts the next cumulative tree: the latest live one plus random
    /// increments. One time in eight the tree promises twice the reserved total (a faulty
    /// coordinator), which claims must not be able to cash beyond finalized totals.
    function postRound(uint256 ts, uint256 seed, uint256 gap) external {
        uint256 t = ts % NT;
        uint256 taskId = taskIds[t];
        FederatedRewards.TaskView memory v = rewards.getTask(taskId);
        uint64 round = lastRound[t] + 1 + uint64(gap % 3);
        uint256[NA] memory cum;
        if (live[t].length > 0) cum = live[t][live[t].length - 1].cum;
        uint256 budget = v.roundBudgetCap < v.poolRemaining ? v.roundBudgetCap : v.poolRemaining;
        uint256 total;
        for (uint256 a = 0; a < NA; a++) {
            uint256 inc = uint256(keccak256(abi.encode(seed, a))) % (budget / NA + 1);
            if (seed % 5 == a) inc = 0; // some accounts earn nothing this round
            cum[a] += inc;
            total += inc;
        }
        uint256 reported = seed % 4 == 3 ? total / 3 : total;
        bytes32 root = _tree(cum)[0];
        vm.prank(coordinator);
        try rewards.postRound(taskId, round, keccak256(abi.encode("model", round)), root, reported) {
            live[t].push(MPost(round, uint64(block.timestamp) + uint64(v.challengeWindow), reported, root, cum));
            lastRound[t] = round;
            calls["postRound"]++;
        } catch {}
    }

    function unauthorizedPost(uint256 ts, uint256 who) external {
        uint256 t = ts % NT;
        address caller = who % 3 == 0 ? arbiter : who % 3 == 1 ? sponsor : actors[who % NA];
        vm.prank(caller);
        try rewards.postRound(taskIds[t], lastRound[t] + 1, 0, keccak256("forged"), 1) {
            unauthorizedPostSucceeded = true;
        } catch {}
        calls["unauthorizedPost"]++;
    }

    function veto(uint256 ts, uint256 is_) external {
        uint256 t = ts % NT;
        uint256 n = live[t].length;
        if (n == 0) return;
        uint256 i = is_ % n;
        MPost storage p = live[t][i];
        bool final_ = p.finalAt <= block.timestamp;
        vm.prank(arbiter);
        try rewards.veto(taskIds[t], p.round) {
            if (final_) lateVetoSucceeded = true;
            // cascade: postings i..n-1 leave the live chain
            for (uint256 k = i; k < n; k++) {
                vetoed[t].push(live[t][k]);
            }
            for (uint256 k = i; k < n; k++) {
                live[t].pop();
            }
            calls["veto"]++;
        } catch {}
    }

    function finalizeRounds(uint256 ts) external {
        rewards.finalizeRounds(taskIds[ts % NT]);
        calls["finalizeRounds"]++;
    }

    function _claim(uint256 t, uint256 a, uint256 amount, bytes32[] memory proof) internal {
        address who = actors[a];
        uint256 taskId = taskIds[t];
        uint256 before = token.balanceOf(who);
        uint256 claimedBefore = rewards.claimed(taskId, who);
        try rewards.claim(taskId, who, amount, proof) {
            uint256 paid = token.balanceOf(who) - before;
            paidOut += paid;
            if (finalIndex(t) == 0) claimWithoutFinalRound = true;
            if (rewards.claimed(taskId, who) > finalCum(t, a)) overclaim = true;
            if (paid != amount - claimedBefore) paidMoreThanDifference = true;
            calls["claim"]++;
        } catch {}
    }

    /// @dev Claim with the latest final tree (the honest path).
    function claim(uint256 ts, uint256 as_) external {
        uint256 t = ts % NT;
        uint256 a = as_ % NA;
        uint256 fi = finalIndex(t);
        if (fi == 0) return;
        MPost storage p = live[t][fi - 1];
        bytes32[] memory tree = _tree(p.cum);
        _claim(t, a, p.cum[a], MerkleBuilder.proof(tree, actors[a], p.cum[a]));
    }

    /// @dev Every account claims with the latest final tree.
    function claimAll(uint256 ts) external {
        uint256 t = ts % NT;
        uint256 fi = finalIndex(t);
        if (fi == 0) return;
        MPost storage p = live[t][fi - 1];
        bytes32[] memory tree = _tree(p.cum);
        for (uint256 a = 0; a < NA; a++) {
            _claim(t, a, p.cum[a], MerkleBuilder.proof(tree, actors[a], p.cum[a]));
        }
    }

    /// @dev Claim with a tree that is not final: a pending live one or a vetoed one.
    function claimNotFinal(uint256 ts, uint256 as_, uint256 is_, bool fromVetoed) external {
        uint256 t = ts % NT;
        uint256 a = as_ % NA;
        MPost[] storage ps = fromVetoed ? vetoed[t] : live[t];
        if (ps.length == 0) return;
        MPost storage p = ps[is_ % ps.length];
        if (!fromVetoed && p.finalAt <= block.timestamp) return;
        bytes32[] memory tree = _tree(p.cum);
        _claim(t, a, p.cum[a], MerkleBuilder.proof(tree, actors[a], p.cum[a]));
        calls["claimNotFinal"]++;
    }

    /// @dev Claim more than the tree gives (a forged amount with a real proof).
    function claimTooMuch(uint256 ts, uint256 as_, uint256 extra) external {
        uint256 t = ts % NT;
        uint256 a = as_ % NA;
        uint256 fi = finalIndex(t);
        if (fi == 0) return;
        MPost storage p = live[t][fi - 1];
        bytes32[] memory tree = _tree(p.cum);
        _claim(t, a, p.cum[a] + bound(extra, 1, 1e24), MerkleBuilder.proof(tree, actors[a], p.cum[a]));
        calls["claimTooMuch"]++;
    }

    function slash(uint256 ts, uint256 as_, uint256 round, uint256 amount) external {
        uint256 t = ts % NT;
        uint256 a = _staker(t, as_, round % 2 == 0);
        uint256 taskId = taskIds[t];
        uint64 r = uint64(round % 20);
        FederatedRewards.Evidence memory e;
        e.attempt = uint32(round % 2);
        e.updateHash = keccak256(abi.encode("update", round));
        e.verdictCode = 2;
        e.reason = keccak256("rejected");
        e.signature = _sign(a, taskId, r, e.attempt, e.updateHash);
        vm.prank(coordinator);
        try rewards.slash(taskId, actors[a], r, bound(amount, 1, 3_000e18), e) returns (bytes32 id) {
            slashes.push(MSlash(t, id));
            calls["slash"]++;
        } catch {}
    }

    function slashEquivocation(uint256 ts, uint256 as_, uint256 round) external {
        uint256 t = ts % NT;
        uint256 a = _staker(t, as_, false);
        uint256 taskId = taskIds[t];
        uint64 r = uint64(round % 20);
        FederatedRewards.SignedSubmission memory s1;
        FederatedRewards.SignedSubmission memory s2;
        s1.updateHash = keccak256(abi.encode("u1", round));
        s2.updateHash = keccak256(abi.encode("u2", round));
        s1.signature = _sign(a, taskId, r, 0, s1.updateHash);
        s2.signature = _sign(a, taskId, r, 0, s2.updateHash);
        try rewards.slashEquivocation(taskId, actors[a], r, s1, s2) returns (bytes32 id) {
            slashes.push(MSlash(t, id));
            calls["slashEquivocation"]++;
        } catch {}
    }

    function vetoSlash(uint256 is_) external {
        if (slashes.length == 0) return;
        MSlash storage s = slashes[is_ % slashes.length];
        (,,, uint64 finalAt) = rewards.slashInfo(taskIds[s.task], s.id);
        vm.prank(arbiter);
        try rewards.vetoSlash(taskIds[s.task], s.id) {
            if (block.timestamp >= finalAt) slashVetoedLate = true;
            calls["vetoSlash"]++;
        } catch {}
    }

    /// @dev Anyone finalizes every slash whose window has passed (the others must refuse).
    function finalizeSlashes() external {
        for (uint256 i = 0; i < slashes.length; i++) {
            MSlash storage s = slashes[i];
            (,,, uint64 finalAt) = rewards.slashInfo(taskIds[s.task], s.id);
            try rewards.finalizeSlash(taskIds[s.task], s.id) {
                if (block.timestamp < finalAt) slashFinalEarly = true;
                calls["finalizeSlash"]++;
            } catch {}
        }
    }

    function reclaim(uint256 ts) external {
        uint256 t = ts % NT;
        uint256 before = token.balanceOf(sponsor);
        vm.prank(sponsor);
        try rewards.reclaim(taskIds[t]) {
            paidOut += token.balanceOf(sponsor) - before;
            calls["reclaim"]++;
        } catch {}
    }
}
