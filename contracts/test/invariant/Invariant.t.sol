// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test, FuzzSelector} from "../utils/Test.sol";
import {Handler} from "./Handler.sol";
import {FederatedRewards} from "../../src/FederatedRewards.sol";
import {TestToken} from "../../src/TestToken.sol";

/// @dev Handler-based invariants of FederatedRewards (runs and depth in foundry.toml).
contract InvariantTest is Test {
    FederatedRewards internal rewards;
    TestToken internal token;
    Handler internal handler;

    uint256 internal constant NA = 4;
    uint256 internal constant NT = 2;

    function setUp() public {
        vm.warp(1_700_000_000);
        rewards = new FederatedRewards();
        token = new TestToken();
        handler = new Handler(rewards, token);
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    function targetSelectors() public view returns (FuzzSelector[] memory selectors) {
        bytes4[] memory s = new bytes4[](25);
        s[0] = Handler.warp.selector;
        s[17] = Handler.warp.selector; // time moves often enough to cross windows and deadlines
        s[18] = Handler.warpToEdge.selector;
        s[19] = Handler.warpToEdge.selector;
        s[20] = Handler.claimAll.selector;
        s[21] = Handler.claimAll.selector;
        s[22] = Handler.unauthorized.selector;
        s[23] = Handler.slash.selector;
        s[24] = Handler.unstakeThenWithdraw.selector;
        s[1] = Handler.stake.selector;
        s[2] = Handler.requestUnstake.selector;
        s[3] = Handler.withdraw.selector;
        s[4] = Handler.postRound.selector;
        s[5] = Handler.postRound.selector; // rounds twice as often
        s[6] = Handler.unauthorizedPost.selector;
        s[7] = Handler.veto.selector;
        s[8] = Handler.finalizeRounds.selector;
        s[9] = Handler.claim.selector;
        s[10] = Handler.claimNotFinal.selector;
        s[11] = Handler.claimTooMuch.selector;
        s[12] = Handler.slash.selector;
        s[13] = Handler.slashEquivocation.selector;
        s[14] = Handler.vetoSlash.selector;
        s[15] = Handler.finalizeSlashes.selector;
        s[16] = Handler.reclaim.selector;
        selectors = new FuzzSelector[](1);
        selectors[0] = FuzzSelector(address(handler), s);
    }

    /// Pool, reserved rounds, claims, stakes, pending slashes and slashed-to-pool stake
    /// reconcile with every token deposited, at all times.
    function invariant_reconciliation() public view {
        uint256 owed;
        for (uint256 t = 0; t < NT; t++) {
            uint256 taskId = handler.task(t);
            FederatedRewards.TaskView memory v = rewards.getTask(taskId);
            // the pool side of one task
            assertEq(
                v.initialPool + v.slashedToPool,
                v.poolRemaining + v.postedTotal + (v.reclaimedTotal - v.expiredTotal),
                "pool accounting"
            );
            assertLe(v.claimedTotal + v.expiredTotal, v.postedTotal, "payouts within posted");
            owed += v.poolRemaining + v.postedTotal - v.claimedTotal - v.expiredTotal;
            for (uint256 a = 0; a < NA; a++) {
                (uint256 active, uint256 unbonding,) = rewards.stakeOf(taskId, handler.actors(a));
                owed += active + unbonding;
            }
        }
        for (uint256 i = 0; i < handler.slashCount(); i++) {
            (uint256 t, bytes32 id) = handler.slashAt(i);
            (, FederatedRewards.SlashStatus s, uint256 amount,) = rewards.slashInfo(handler.task(t), id);
            if (s == FederatedRewards.SlashStatus.Pending) owed += amount;
        }
        uint256 balance = token.balanceOf(address(rewards));
        assertEq(balance, owed, "balance == what is owed");
        assertEq(balance, handler.deposited() - handler.paidOut(), "balance == deposits - payouts");
    }

    /// No account ever holds more claimed than its cumulative amount in the latest final tree,
    /// and claims never exceed finalized totals.
    function invariant_claimsBounded() public view {
        assertFalse(handler.overclaim(), "claimed above the final cumulative amount");
        assertFalse(handler.paidMoreThanDifference(), "paid more than cumulative - claimed");
        for (uint256 t = 0; t < NT; t++) {
            uint256 taskId = handler.task(t);
            FederatedRewards.TaskView memory v = rewards.getTask(taskId);
            uint256 sum;
            for (uint256 a = 0; a < NA; a++) {
                uint256 c = rewards.claimed(taskId, handler.actors(a));
                assertLe(c, handler.finalCum(t, a), "account above its final cumulative amount");
                sum += c;
            }
            assertEq(sum, v.claimedTotal, "claimed total");
            assertLe(v.claimedTotal, v.finalizedTotal, "claims within finalized totals");
        }
    }

    /// Only the coordinator posts: the chain's rounds are exactly the coordinator's.
    function invariant_onlyCoordinatorPosts() public view {
        assertFalse(handler.unauthorizedPostSucceeded(), "a non-coordinator posted");
        assertFalse(handler.unauthorizedActionSucceeded(), "a role's action by someone else");
        for (uint256 t = 0; t < NT; t++) {
            uint256 taskId = handler.task(t);
            assertEq(rewards.getTask(taskId).lastPostedRound, handler.lastRound(t), "last round");
            for (uint256 i = 0; i < handler.liveCount(t); i++) {
                (uint64 round,, uint256 total, bytes32 root) = handler.liveAt(t, i);
                (, , bytes32 r, uint256 tot,) = rewards.roundInfo(taskId, round);
                assertEq(r, root, "root");
                assertEq(tot, total, "total");
            }
        }
    }

    /// Nothing is final before its challenge window has passed; claims need a final round.
    function invariant_nothingFinalEarly() public view {
        assertFalse(handler.claimWithoutFinalRound(), "claim paid without a final round");
        assertFalse(handler.lateVetoSucceeded(), "veto after the window");
        for (uint256 t = 0; t < NT; t++) {
            uint256 taskId = handler.task(t);
            uint64 latestFinal;
            for (uint256 i = 0; i < handler.liveCount(t); i++) {
                (uint64 round, uint64 finalAt,,) = handler.liveAt(t, i);
                (FederatedRewards.RoundStatus s,,,,) = rewards.roundInfo(taskId, round);
                if (block.timestamp >= finalAt) {
                    assertTrue(s == FederatedRewards.RoundStatus.Final, "final after window");
                    latestFinal = round;
                } else {
                    assertTrue(s == FederatedRewards.RoundStatus.Pending, "pending inside window");
                }
            }
            assertEq(rewards.getTask(taskId).latestFinalRound, latestFinal, "latest final round");
        }
    }

    /// Stake leaves only through withdraw after unbonding, or through a slash that became final
    /// after its window; slashes are vetoable only inside it.
    function invariant_stakeLocks() public view {
        assertFalse(handler.earlyWithdraw(), "withdrawn before the unbonding period");
        assertFalse(handler.slashFinalEarly(), "slash final inside its window");
        assertFalse(handler.slashVetoedLate(), "slash vetoed after its window");
    }

    /// Vetoed rounds pay nothing: they stay vetoed, and finalized totals are the totals of
    /// the live final rounds only.
    function invariant_vetoedRoundsPayNothing() public view {
        for (uint256 t = 0; t < NT; t++) {
            uint256 taskId = handler.task(t);
            for (uint256 i = 0; i < handler.vetoedCount(t); i++) {
                (FederatedRewards.RoundStatus s,,,,) = rewards.roundInfo(taskId, handler.vetoedRound(t, i));
                assertTrue(s == FederatedRewards.RoundStatus.Vetoed, "vetoed stays vetoed");
            }
            assertEq(rewards.getTask(taskId).finalizedTotal, handler.finalTotal(t), "finalized = live final totals");
        }
    }
}

/// @dev The handler is only useful if its actions succeed often enough: drive it with a fixed
/// pseudo-random sequence and check that every action succeeded at least once, and that the
/// invariants' flags stayed down.
contract HandlerCoverageTest is Test {
    function test_handlerActionsSucceed() public {
        vm.warp(1_700_000_000);
        FederatedRewards rewards = new FederatedRewards();
        TestToken token = new TestToken();
        Handler h = new Handler(rewards, token);
        for (uint256 i = 0; i < 600; i++) {
            uint256 r = uint256(keccak256(abi.encode(i)));
            uint256 a = r >> 8;
            uint256 b = r >> 40;
            uint256 c = r >> 80;
            uint256 k = r % 16;
            if (k == 0) h.warp(b % 6 hours);
            else if (k == 1) h.stake(a, b, 50e18 + c % 1_000e18);
            else if (k == 2) h.requestUnstake(a, b, c);
            else if (k == 3) b % 2 == 0 ? h.withdraw(a, b) : h.unstakeThenWithdraw(a, b, c);
            else if (k == 4 || k == 5) h.postRound(a, b, c);
            else if (k == 6) h.unauthorizedPost(a, b);
            else if (k == 7) h.veto(a, b);
            else if (k == 8) h.finalizeRounds(a);
            else if (k == 9) b % 2 == 0 ? h.claim(a, b) : h.claimAll(a);
            else if (k == 10) h.claimNotFinal(a, b, c, c % 2 == 0);
            else if (k == 11) h.claimTooMuch(a, b, c);
            else if (k == 12) h.slash(a, b, c, 1e18 + c % 500e18);
            else if (k == 13) h.slashEquivocation(a, b, c);
            else if (k == 14) h.vetoSlash(a);
            else h.finalizeSlashes();
            if (i % 50 == 49) h.reclaim(a);
            if (i % 40 == 7) h.warpToEdge(a, b % 2, c, i);
            if (i % 20 == 13) h.unauthorized(a, b, c, i);
        }
        string[16] memory names = [
            "stake",
            "requestUnstake",
            "withdraw",
            "postRound",
            "veto",
            "finalizeRounds",
            "claim",
            "slash",
            "slashEquivocation",
            "vetoSlash",
            "finalizeSlash",
            "reclaim",
            "warp",
            "unauthorizedPost",
            "warpToEdge",
            "unauthorized"
        ];
        for (uint256 i = 0; i < names.length; i++) {
            assertGe(h.calls(bytes32(bytes(names[i]))), 1, names[i]);
        }
        assertFalse(h.unauthorizedPostSucceeded(), "unauthorized post");
        assertFalse(h.unauthorizedActionSucceeded(), "unauthorized action");
        assertFalse(h.lateVetoSucceeded(), "late veto");
        assertFalse(h.claimWithoutFinalRound(), "claim without final round");
        assertFalse(h.overclaim(), "overclaim");
        assertFalse(h.paidMoreThanDifference(), "paid more");
        assertFalse(h.earlyWithdraw(), "early withdraw");
        assertFalse(h.slashFinalEarly(), "slash final early");
        assertFalse(h.slashVetoedLate(), "slash vetoed late");
    }
}
