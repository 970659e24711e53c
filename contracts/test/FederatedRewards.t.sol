// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Base} from "./Base.t.sol";
import {FeeToken, ReentrantToken} from "./utils/Mocks.sol";
import {FederatedRewards} from "../src/FederatedRewards.sol";
import {TestToken} from "../src/TestToken.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

/// @dev Unit tests: every function, its events, and every revert.
contract FederatedRewardsTest is Base {
    bytes32 internal constant H1 = keccak256("update-1");
    bytes32 internal constant H2 = keccak256("update-2");

    // ------------------------------------------------------------------ createTask

    function test_createTask_escrowsPoolAndRecordsParams() public {
        FederatedRewards.TaskParams memory p = defaultParams();
        token.mint(sponsor, p.pool);
        vm.startPrank(sponsor);
        token.approve(address(rewards), p.pool);
        vm.expectEmit(address(rewards));
        emit FederatedRewards.TaskCreated(1, sponsor, address(token), p);
        uint256 taskId = rewards.createTask(p);
        vm.stopPrank();

        assertEq(taskId, 1, "first id");
        assertEq(rewards.taskCount(), 1, "count");
        assertEq(token.balanceOf(address(rewards)), POOL, "escrowed");
        assertEq(token.balanceOf(sponsor), 0, "sponsor paid");
        FederatedRewards.TaskView memory v = rewards.getTask(taskId);
        assertEq(v.sponsor, sponsor, "sponsor");
        assertEq(v.token, address(token), "token");
        assertEq(v.coordinator, coordinator, "coordinator");
        assertEq(v.arbiter, arbiter, "arbiter");
        assertEq(v.specHash, p.specHash, "spec");
        assertEq(v.minStake, MIN_STAKE, "min stake");
        assertEq(v.roundBudgetCap, CAP, "cap");
        assertEq(v.challengeWindow, WINDOW, "window");
        assertEq(v.unbondingPeriod, UNBONDING, "unbonding");
        assertEq(v.endTime, p.endTime, "end");
        assertEq(v.claimDeadline, p.claimDeadline, "deadline");
        assertEq(v.initialPool, POOL, "initial");
        assertEq(v.poolRemaining, POOL, "remaining");
        assertEq(v.postedTotal + v.finalizedTotal + v.claimedTotal, 0, "no rounds");
        assertEq(v.lastPostedRound + v.latestFinalRound, 0, "no rounds");
    }

    function test_createTask_idsAreSequential() public {
        assertEq(createTask(), 1, "1");
        assertEq(createTask(), 2, "2");
        assertEq(createTask(), 3, "3");
    }

    function expectCreateRevert(FederatedRewards.TaskParams memory p, bytes memory err) internal {
        token.mint(sponsor, POOL);
        vm.startPrank(sponsor);
        token.approve(address(rewards), type(uint256).max);
        vm.expectRevert(err);
        rewards.createTask(p);
        vm.stopPrank();
    }

    function test_createTask_revertsOnZeroSpecHash() public {
        FederatedRewards.TaskParams memory p = defaultParams();
        p.specHash = 0;
        expectCreateRevert(p, abi.encodeWithSelector(FederatedRewards.InvalidSpecHash.selector));
    }

    function test_createTask_revertsOnZeroAddresses() public {
        bytes memory err = abi.encodeWithSelector(FederatedRewards.ZeroAddress.selector);
        FederatedRewards.TaskParams memory p = defaultParams();
        p.token = address(0);
        expectCreateRevert(p, err);
        p = defaultParams();
        p.coordinator = address(0);
        expectCreateRevert(p, err);
        p = defaultParams();
        p.arbiter = address(0);
        expectCreateRevert(p, err);
    }

    function test_createTask_revertsOnBadPool() public {
        FederatedRewards.TaskParams memory p = defaultParams();
        p.pool = 0;
        expectCreateRevert(p, abi.encodeWithSelector(FederatedRewards.InvalidPool.selector, 0));
        p.pool = uint256(type(uint112).max) + 1;
        expectCreateRevert(p, abi.encodeWithSelector(FederatedRewards.InvalidPool.selector, p.pool));
    }

    function test_createTask_revertsOnBadBudgetCap() public {
        FederatedRewards.TaskParams memory p = defaultParams();
        p.roundBudgetCap = 0;
        expectCreateRevert(p, abi.encodeWithSelector(FederatedRewards.InvalidBudgetCap.selector, 0));
        p.roundBudgetCap = uint256(type(uint112).max) + 1;
        expectCreateRevert(p, abi.encodeWithSelector(FederatedRewards.InvalidBudgetCap.selector, p.roundBudgetCap));
    }

    function test_createTask_revertsOnBadMinStake() public {
        FederatedRewards.TaskParams memory p = defaultParams();
        p.minStake = uint256(type(uint112).max) + 1;
        expectCreateRevert(p, abi.encodeWithSelector(FederatedRewards.InvalidMinStake.selector, p.minStake));
    }

    function test_createTask_revertsOnBadChallengeWindow() public {
        FederatedRewards.TaskParams memory p = defaultParams();
        p.challengeWindow = 0;
        expectCreateRevert(p, abi.encodeWithSelector(FederatedRewards.InvalidChallengeWindow.selector, 0));
        p.challengeWindow = 3650 days + 1;
        expectCreateRevert(p, abi.encodeWithSelector(FederatedRewards.InvalidChallengeWindow.selector, 3650 days + 1));
    }

    function test_createTask_revertsOnBadUnbondingPeriod() public {
        FederatedRewards.TaskParams memory p = defaultParams();
        p.unbondingPeriod = 3650 days + 1;
        expectCreateRevert(p, abi.encodeWithSelector(FederatedRewards.InvalidUnbondingPeriod.selector, 3650 days + 1));
    }

    function test_createTask_revertsOnBadEndTime() public {
        FederatedRewards.TaskParams memory p = defaultParams();
        p.endTime = uint64(block.timestamp);
        p.claimDeadline = p.endTime + WINDOW;
        expectCreateRevert(p, abi.encodeWithSelector(FederatedRewards.InvalidEndTime.selector, p.endTime));
        p.endTime = uint64(block.timestamp) + 3650 days + 1;
        p.claimDeadline = p.endTime + 2 days;
        expectCreateRevert(p, abi.encodeWithSelector(FederatedRewards.InvalidEndTime.selector, p.endTime));
    }

    function test_createTask_revertsOnBadClaimDeadline() public {
        FederatedRewards.TaskParams memory p = defaultParams();
        p.claimDeadline = p.endTime + WINDOW - 1;
        expectCreateRevert(p, abi.encodeWithSelector(FederatedRewards.InvalidClaimDeadline.selector, p.claimDeadline));
        p.claimDeadline = p.endTime + 3650 days + 1;
        expectCreateRevert(p, abi.encodeWithSelector(FederatedRewards.InvalidClaimDeadline.selector, p.claimDeadline));
        // the lower edge is accepted
        p.claimDeadline = p.endTime + WINDOW;
        createTask(p);
    }

    function test_createTask_revertsOnFeeOnTransferToken() public {
        FeeToken fee = new FeeToken();
        FederatedRewards.TaskParams memory p = defaultParams();
        p.token = address(fee);
        fee.mint(sponsor, POOL);
        vm.startPrank(sponsor);
        fee.approve(address(rewards), POOL);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.UnsupportedToken.selector, POOL, POOL - POOL / 100));
        rewards.createTask(p);
        vm.stopPrank();
    }

    function test_createTask_revertsWithoutAllowance() public {
        FederatedRewards.TaskParams memory p = defaultParams();
        token.mint(sponsor, POOL);
        vm.prank(sponsor);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(rewards), 0, POOL)
        );
        rewards.createTask(p);
    }

    function test_createTask_revertsOnTokenWithoutCode() public {
        FederatedRewards.TaskParams memory p = defaultParams();
        p.token = makeAddr("not a token");
        vm.prank(sponsor);
        vm.expectRevert();
        rewards.createTask(p);
    }

    // ------------------------------------------------------------------ stake

    function test_stake_addsActiveStake() public {
        uint256 taskId = createTask();
        token.mint(alice, 300e18);
        vm.startPrank(alice);
        token.approve(address(rewards), 300e18);
        vm.expectEmit(address(rewards));
        emit FederatedRewards.Staked(taskId, alice, 200e18, 200e18);
        rewards.stake(taskId, 200e18);
        // a top-up below the minimum is fine once the total is above it
        vm.expectEmit(address(rewards));
        emit FederatedRewards.Staked(taskId, alice, 1e18, 201e18);
        rewards.stake(taskId, 1e18);
        vm.stopPrank();
        (uint256 active, uint256 unbonding, uint64 unlockAt) = rewards.stakeOf(taskId, alice);
        assertEq(active, 201e18, "active");
        assertEq(unbonding, 0, "unbonding");
        assertEq(unlockAt, 0, "unlock");
        assertEq(token.balanceOf(address(rewards)), POOL + 201e18, "held");
    }

    function test_stake_revertsOnUnknownTask() public {
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.UnknownTask.selector, 7));
        rewards.stake(7, 1e18);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.UnknownTask.selector, 0));
        rewards.stake(0, 1e18);
    }

    function test_stake_revertsAfterEnd() public {
        uint256 taskId = createTask();
        uint64 end = defaultParams().endTime;
        vm.warp(end);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.TaskEnded.selector, taskId, end));
        rewards.stake(taskId, MIN_STAKE);
    }

    function test_stake_revertsOnZeroAmount() public {
        uint256 taskId = createTask();
        vm.prank(alice);
        vm.expectRevert(FederatedRewards.ZeroAmount.selector);
        rewards.stake(taskId, 0);
    }

    function test_stake_revertsOnHugeAmount() public {
        uint256 taskId = createTask();
        uint256 huge = uint256(type(uint112).max) + 1;
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.AmountTooLarge.selector, huge));
        rewards.stake(taskId, huge);
    }

    function test_stake_revertsBelowMinimum() public {
        uint256 taskId = createTask();
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.StakeBelowMinimum.selector, MIN_STAKE - 1, MIN_STAKE));
        rewards.stake(taskId, MIN_STAKE - 1);
    }

    function test_stake_revertsWithoutAllowance() public {
        uint256 taskId = createTask();
        token.mint(alice, MIN_STAKE);
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(rewards), 0, MIN_STAKE)
        );
        rewards.stake(taskId, MIN_STAKE);
    }

    // ------------------------------------------------------------------ requestUnstake / withdraw

    function test_requestUnstake_movesToUnbondingAndRestartsTimer() public {
        uint256 taskId = createTask();
        doStake(taskId, alice, 500e18);
        vm.prank(alice);
        vm.expectEmit(address(rewards));
        emit FederatedRewards.UnstakeRequested(taskId, alice, 100e18, 100e18, uint64(block.timestamp) + UNBONDING);
        rewards.requestUnstake(taskId, 100e18);

        vm.warp(block.timestamp + 1 days);
        uint64 expectedUnlock = uint64(block.timestamp) + UNBONDING;
        vm.prank(alice);
        vm.expectEmit(address(rewards));
        emit FederatedRewards.UnstakeRequested(taskId, alice, 150e18, 250e18, expectedUnlock);
        rewards.requestUnstake(taskId, 150e18);

        (uint256 active, uint256 unbonding, uint64 unlockAt) = rewards.stakeOf(taskId, alice);
        assertEq(active, 250e18, "active");
        assertEq(unbonding, 250e18, "unbonding");
        assertEq(unlockAt, expectedUnlock, "timer restarted");
    }

    function test_requestUnstake_allowsFullExit() public {
        uint256 taskId = createTask();
        doStake(taskId, alice, 500e18);
        vm.prank(alice);
        rewards.requestUnstake(taskId, 500e18);
        (uint256 active, uint256 unbonding) = stakeOf(taskId, alice);
        assertEq(active, 0, "active");
        assertEq(unbonding, 500e18, "unbonding");
    }

    function test_requestUnstake_reverts() public {
        uint256 taskId = createTask();
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.UnknownTask.selector, 9));
        rewards.requestUnstake(9, 1);

        doStake(taskId, alice, 150e18);
        vm.startPrank(alice);
        vm.expectRevert(FederatedRewards.ZeroAmount.selector);
        rewards.requestUnstake(taskId, 0);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.InsufficientStake.selector, 150e18, 151e18));
        rewards.requestUnstake(taskId, 151e18);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.StakeBelowMinimum.selector, 99e18, MIN_STAKE));
        rewards.requestUnstake(taskId, 51e18);
        vm.stopPrank();
    }

    function test_withdraw_paysAfterUnbonding() public {
        uint256 taskId = createTask();
        doStake(taskId, alice, 500e18);
        vm.prank(alice);
        rewards.requestUnstake(taskId, 200e18);
        vm.warp(block.timestamp + UNBONDING);
        vm.prank(alice);
        vm.expectEmit(address(rewards));
        emit FederatedRewards.Withdrawn(taskId, alice, 200e18);
        rewards.withdraw(taskId);
        assertEq(token.balanceOf(alice), 200e18, "paid");
        (uint256 active, uint256 unbonding) = stakeOf(taskId, alice);
        assertEq(active, 300e18, "active untouched");
        assertEq(unbonding, 0, "unbonding emptied");
    }

    function test_withdraw_worksAfterTaskEnd() public {
        uint256 taskId = createTask();
        doStake(taskId, alice, 500e18);
        vm.warp(defaultParams().claimDeadline + 1);
        vm.startPrank(alice);
        rewards.requestUnstake(taskId, 500e18);
        vm.warp(block.timestamp + UNBONDING);
        rewards.withdraw(taskId);
        vm.stopPrank();
        assertEq(token.balanceOf(alice), 500e18, "paid");
    }

    function test_withdraw_reverts() public {
        uint256 taskId = createTask();
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.UnknownTask.selector, 9));
        rewards.withdraw(9);

        doStake(taskId, alice, 500e18);
        vm.startPrank(alice);
        vm.expectRevert(FederatedRewards.NothingToWithdraw.selector);
        rewards.withdraw(taskId);
        rewards.requestUnstake(taskId, 200e18);
        uint64 unlock = uint64(block.timestamp) + UNBONDING;
        vm.warp(unlock - 1);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.StillUnbonding.selector, unlock));
        rewards.withdraw(taskId);
        vm.warp(unlock);
        rewards.withdraw(taskId);
        vm.expectRevert(FederatedRewards.NothingToWithdraw.selector);
        rewards.withdraw(taskId);
        vm.stopPrank();
    }

    // ------------------------------------------------------------------ postRound

    function test_postRound_reservesAndRecords() public {
        uint256 taskId = createTask();
        bytes32 model = keccak256("model-1");
        bytes32 root = keccak256("root-1");
        vm.prank(coordinator);
        vm.expectEmit(address(rewards));
        emit FederatedRewards.RoundPosted(taskId, 1, model, root, 5_000e18, uint64(block.timestamp) + WINDOW);
        rewards.postRound(taskId, 1, model, root, 5_000e18);

        (FederatedRewards.RoundStatus s, bytes32 m, bytes32 r, uint256 total, uint64 finalAt) =
            rewards.roundInfo(taskId, 1);
        assertTrue(s == FederatedRewards.RoundStatus.Pending, "pending");
        assertEq(m, model, "model");
        assertEq(r, root, "root");
        assertEq(total, 5_000e18, "total");
        assertEq(finalAt, block.timestamp + WINDOW, "finalAt");
        FederatedRewards.TaskView memory v = rewards.getTask(taskId);
        assertEq(v.poolRemaining, POOL - 5_000e18, "reserved");
        assertEq(v.postedTotal, 5_000e18, "posted");
        assertEq(v.finalizedTotal, 0, "not final");
        assertEq(v.lastPostedRound, 1, "last");
        assertEq(token.balanceOf(address(rewards)), POOL, "nothing moved");
    }

    function test_postRound_skippedNumbersAndZeroTotalAllowed() public {
        uint256 taskId = createTask();
        post(taskId, 5, keccak256("r"), 0);
        post(taskId, 9, keccak256("r"), CAP);
        assertTrue(status(taskId, 7) == FederatedRewards.RoundStatus.None, "skipped");
        assertEq(rewards.getTask(taskId).postedTotal, CAP, "posted");
    }

    function test_postRound_reverts() public {
        uint256 taskId = createTask();
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.UnknownTask.selector, 2));
        rewards.postRound(2, 1, 0, keccak256("r"), 1);

        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.NotCoordinator.selector, stranger));
        rewards.postRound(taskId, 1, 0, keccak256("r"), 1);
        vm.prank(arbiter);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.NotCoordinator.selector, arbiter));
        rewards.postRound(taskId, 1, 0, keccak256("r"), 1);

        vm.startPrank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.RoundNotIncreasing.selector, 0, 0));
        rewards.postRound(taskId, 0, 0, keccak256("r"), 1);
        vm.expectRevert(FederatedRewards.InvalidRoot.selector);
        rewards.postRound(taskId, 1, 0, 0, 1);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.RoundBudgetExceeded.selector, CAP + 1, CAP));
        rewards.postRound(taskId, 1, 0, keccak256("r"), CAP + 1);
        rewards.postRound(taskId, 3, 0, keccak256("r"), 1);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.RoundNotIncreasing.selector, 3, 3));
        rewards.postRound(taskId, 3, 0, keccak256("r"), 1);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.RoundNotIncreasing.selector, 2, 3));
        rewards.postRound(taskId, 2, 0, keccak256("r"), 1);
        vm.stopPrank();

        uint64 end = defaultParams().endTime;
        vm.warp(end);
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.TaskEnded.selector, taskId, end));
        rewards.postRound(taskId, 4, 0, keccak256("r"), 1);
    }

    function test_postRound_revertsWhenPoolIsShort() public {
        FederatedRewards.TaskParams memory p = defaultParams();
        p.pool = 15_000e18;
        uint256 taskId = createTask(p);
        post(taskId, 1, keccak256("r"), CAP);
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.InsufficientPool.selector, CAP, 5_000e18));
        rewards.postRound(taskId, 2, 0, keccak256("r"), CAP);
    }

    // ------------------------------------------------------------------ veto

    function test_veto_returnsRoundTotalToPool() public {
        uint256 taskId = createTask();
        post(taskId, 1, keccak256("r1"), 4_000e18);
        vm.prank(arbiter);
        vm.expectEmit(address(rewards));
        emit FederatedRewards.RoundsVetoed(taskId, 1, 1, 4_000e18);
        rewards.veto(taskId, 1);
        assertTrue(status(taskId, 1) == FederatedRewards.RoundStatus.Vetoed, "vetoed");
        FederatedRewards.TaskView memory v = rewards.getTask(taskId);
        assertEq(v.poolRemaining, POOL, "refunded");
        assertEq(v.postedTotal, 0, "nothing posted");
        assertEq(v.lastPostedRound, 1, "number stays used");
        // the window passing does not revive it
        vm.warp(block.timestamp + WINDOW);
        assertTrue(status(taskId, 1) == FederatedRewards.RoundStatus.Vetoed, "still vetoed");
        assertEq(rewards.finalizeRounds(taskId), 0, "nothing final");
    }

    function test_veto_cascadesToLaterRoundsAndCoordinatorReposts() public {
        uint256 taskId = createTask();
        (bytes32[] memory t1,,) = tree3(100, 0, 0);
        (bytes32[] memory t2,,) = tree3(100, 200, 0);
        (bytes32[] memory t3,,) = tree3(100, 200, 300);
        post(taskId, 1, t1[0], 100);
        vm.warp(block.timestamp + 1 hours);
        post(taskId, 2, t2[0], 200);
        vm.warp(block.timestamp + 1 hours);
        post(taskId, 3, t3[0], 300);

        vm.prank(arbiter);
        vm.expectEmit(address(rewards));
        emit FederatedRewards.RoundsVetoed(taskId, 2, 3, 500);
        rewards.veto(taskId, 2);

        assertTrue(status(taskId, 1) == FederatedRewards.RoundStatus.Pending, "1 pending");
        assertTrue(status(taskId, 2) == FederatedRewards.RoundStatus.Vetoed, "2 vetoed");
        assertTrue(status(taskId, 3) == FederatedRewards.RoundStatus.Vetoed, "3 vetoed by cascade");
        assertEq(rewards.getTask(taskId).poolRemaining, POOL - 100, "refund of 2 and 3");

        vm.prank(arbiter);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.RoundNotPending.selector, taskId, 3));
        rewards.veto(taskId, 3);

        // the coordinator reposts rounds 2..3 without bob's payout under a new number
        (bytes32[] memory t4,,) = tree3(100, 0, 300);
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.RoundNotIncreasing.selector, 3, 3));
        rewards.postRound(taskId, 3, 0, t4[0], 300);
        post(taskId, 4, t4[0], 300);

        vm.warp(block.timestamp + WINDOW);
        assertEq(rewards.finalizeRounds(taskId), 4, "4 final");
        assertTrue(status(taskId, 1) == FederatedRewards.RoundStatus.Final, "1 final");
        assertTrue(status(taskId, 4) == FederatedRewards.RoundStatus.Final, "4 final");
        assertEq(rewards.getTask(taskId).finalizedTotal, 400, "1 + 4");

        rewards.claim(taskId, carol, 300, proofOf(t4, carol, 300));
        assertEq(token.balanceOf(carol), 300, "carol");
        // bob's vetoed payout cannot be claimed with the vetoed tree
        bytes32[] memory bobProof = proofOf(t3, bob, 200);
        vm.expectRevert(FederatedRewards.InvalidProof.selector);
        rewards.claim(taskId, bob, 200, bobProof);
    }

    function test_veto_earlierRoundAfterLaterVeto() public {
        uint256 taskId = createTask();
        post(taskId, 1, keccak256("r1"), 10);
        post(taskId, 2, keccak256("r2"), 20);
        vm.startPrank(arbiter);
        rewards.veto(taskId, 2);
        vm.expectEmit(address(rewards));
        emit FederatedRewards.RoundsVetoed(taskId, 1, 1, 10);
        rewards.veto(taskId, 1);
        vm.stopPrank();
        assertEq(rewards.getTask(taskId).poolRemaining, POOL, "all back");
    }

    function test_veto_reverts() public {
        uint256 taskId = createTask();
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.UnknownTask.selector, 5));
        rewards.veto(5, 1);

        post(taskId, 1, keccak256("r1"), 10);
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.NotArbiter.selector, coordinator));
        rewards.veto(taskId, 1);

        vm.startPrank(arbiter);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.RoundNotPending.selector, taskId, 2));
        rewards.veto(taskId, 2);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.RoundNotPending.selector, taskId, 0));
        rewards.veto(taskId, 0);
        uint64 finalAt = uint64(block.timestamp) + WINDOW;
        vm.warp(finalAt);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.ChallengeWindowOver.selector, finalAt));
        rewards.veto(taskId, 1);
        vm.stopPrank();
    }

    function test_veto_worksAfterTaskEndWithinWindow() public {
        uint256 taskId = createTask();
        uint64 end = defaultParams().endTime;
        vm.warp(end - 1);
        post(taskId, 1, keccak256("r1"), 10);
        vm.warp(end + WINDOW - 2);
        vm.prank(arbiter);
        rewards.veto(taskId, 1);
        assertEq(rewards.getTask(taskId).poolRemaining, POOL, "refunded");
    }

    // ------------------------------------------------------------------ finalizeRounds

    function test_finalizeRounds_writesLatestFinalRound() public {
        uint256 taskId = createTask();
        assertEq(rewards.finalizeRounds(taskId), 0, "none posted");
        bytes32 r1 = keccak256("r1");
        post(taskId, 1, r1, 10);
        vm.warp(block.timestamp + 10);
        post(taskId, 2, keccak256("r2"), 20);
        assertEq(rewards.finalizeRounds(taskId), 0, "nothing final yet");

        vm.warp(block.timestamp + WINDOW - 10);
        vm.expectEmit(address(rewards));
        emit FederatedRewards.RoundsFinalized(taskId, 1, r1, 10);
        assertEq(rewards.finalizeRounds(taskId), 1, "1 final");
        assertTrue(status(taskId, 2) == FederatedRewards.RoundStatus.Pending, "2 pending");
        FederatedRewards.TaskView memory v = rewards.getTask(taskId);
        assertEq(v.finalizedTotal, 10, "finalized");
        assertEq(v.latestFinalRound, 1, "latest");
        assertEq(v.latestFinalRoot, r1, "root");

        vm.warp(block.timestamp + 10);
        assertEq(rewards.getTask(taskId).finalizedTotal, 30, "view is lazy-aware");
        assertEq(rewards.finalizeRounds(taskId), 2, "2 final");
        assertEq(rewards.finalizeRounds(taskId), 2, "idempotent");
    }

    function test_finalizeRounds_binarySearchOverManyPostings() public {
        uint256 taskId = createTask();
        for (uint64 r = 1; r <= 40; r++) {
            post(taskId, r, keccak256(abi.encode(r)), r);
            vm.warp(block.timestamp + 1 hours);
        }
        // round r was posted at START + (r-1) hours; it is final once WINDOW (24h) passed.
        for (uint64 step = 0; step < 25; step++) {
            uint256 finalUpTo = (block.timestamp - START) / 1 hours >= 24 ? (block.timestamp - START) / 1 hours - 23 : 0;
            if (finalUpTo > 40) finalUpTo = 40;
            assertEq(rewards.getTask(taskId).latestFinalRound, finalUpTo, "view");
            if (step % 3 == 0) assertEq(rewards.finalizeRounds(taskId), finalUpTo, "written");
            vm.warp(block.timestamp + 1 hours + 7 minutes);
        }
    }

    function test_finalizeRounds_revertsOnUnknownTask() public {
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.UnknownTask.selector, 1));
        rewards.finalizeRounds(1);
    }

    // ------------------------------------------------------------------ claim

    function test_claim_paysCumulativeDifference() public {
        uint256 taskId = createTask();
        (bytes32[] memory t1,,) = tree3(100e18, 50e18, 0);
        post(taskId, 1, t1[0], 150e18);
        vm.warp(block.timestamp + WINDOW);

        vm.expectEmit(address(rewards));
        emit FederatedRewards.Claimed(taskId, alice, 100e18, 100e18);
        rewards.claim(taskId, alice, 100e18, proofOf(t1, alice, 100e18));
        assertEq(token.balanceOf(alice), 100e18, "alice round 1");
        assertEq(rewards.claimed(taskId, alice), 100e18, "claimed");

        (bytes32[] memory t2,,) = tree3(130e18, 50e18, 20e18);
        post(taskId, 2, t2[0], 50e18);
        vm.warp(block.timestamp + WINDOW);
        vm.prank(stranger); // anyone may submit; the account is paid
        rewards.claim(taskId, alice, 130e18, proofOf(t2, alice, 130e18));
        assertEq(token.balanceOf(alice), 130e18, "alice round 2");
        rewards.claim(taskId, bob, 50e18, proofOf(t2, bob, 50e18));
        rewards.claim(taskId, carol, 20e18, proofOf(t2, carol, 20e18));
        FederatedRewards.TaskView memory v = rewards.getTask(taskId);
        assertEq(v.claimedTotal, 200e18, "claimed total");
        assertEq(v.finalizedTotal, 200e18, "finalized total");
        assertEq(token.balanceOf(address(rewards)), POOL - 200e18, "paid out");
    }

    function test_claim_finalizesLazily() public {
        uint256 taskId = createTask();
        (bytes32[] memory t1,,) = tree3(7, 0, 0);
        post(taskId, 1, t1[0], 7);
        vm.warp(block.timestamp + WINDOW);
        vm.expectEmit(address(rewards));
        emit FederatedRewards.RoundsFinalized(taskId, 1, t1[0], 7);
        rewards.claim(taskId, alice, 7, proofOf(t1, alice, 7));
    }

    function test_claim_neverUsesPendingRoot() public {
        uint256 taskId = createTask();
        (bytes32[] memory t1,,) = tree3(100, 0, 0);
        post(taskId, 1, t1[0], 100);
        bytes32[] memory p1 = proofOf(t1, alice, 100);
        vm.warp(block.timestamp + WINDOW - 1);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.NoFinalRound.selector, taskId));
        rewards.claim(taskId, alice, 100, p1);
        vm.warp(block.timestamp + 1);

        (bytes32[] memory t2,,) = tree3(300, 0, 0);
        post(taskId, 2, t2[0], 200);
        bytes32[] memory p2 = proofOf(t2, alice, 300);
        vm.expectRevert(FederatedRewards.InvalidProof.selector);
        rewards.claim(taskId, alice, 300, p2);
        rewards.claim(taskId, alice, 100, p1);
        assertEq(token.balanceOf(alice), 100, "only the final amount");
    }

    function test_claim_vetoedRoundPaysNothing() public {
        uint256 taskId = createTask();
        (bytes32[] memory t1,,) = tree3(100, 0, 0);
        post(taskId, 1, t1[0], 100);
        bytes32[] memory p1 = proofOf(t1, alice, 100);
        vm.prank(arbiter);
        rewards.veto(taskId, 1);
        vm.warp(block.timestamp + WINDOW);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.NoFinalRound.selector, taskId));
        rewards.claim(taskId, alice, 100, p1);
    }

    function test_claim_cannotExceedFinalizedTotal() public {
        uint256 taskId = createTask();
        // a faulty coordinator posts a tree promising more than the round total
        (bytes32[] memory t1,,) = tree3(100, 100, 0);
        post(taskId, 1, t1[0], 150);
        vm.warp(block.timestamp + WINDOW);
        rewards.claim(taskId, alice, 100, proofOf(t1, alice, 100));
        bytes32[] memory pb = proofOf(t1, bob, 100);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.ExceedsFinalizedTotal.selector, 200, 150));
        rewards.claim(taskId, bob, 100, pb);
    }

    function test_claim_reverts() public {
        uint256 taskId = createTask();
        bytes32[] memory none = new bytes32[](0);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.UnknownTask.selector, 3));
        rewards.claim(3, alice, 1, none);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.NoFinalRound.selector, taskId));
        rewards.claim(taskId, alice, 1, none);
        vm.expectRevert(FederatedRewards.ZeroAddress.selector);
        rewards.claim(taskId, address(0), 1, none);

        (bytes32[] memory t1,,) = tree3(100, 40, 0);
        post(taskId, 1, t1[0], 140);
        vm.warp(block.timestamp + WINDOW);
        bytes32[] memory pa = proofOf(t1, alice, 100);
        vm.expectRevert(FederatedRewards.InvalidProof.selector);
        rewards.claim(taskId, alice, 101, pa); // wrong amount
        vm.expectRevert(FederatedRewards.InvalidProof.selector);
        rewards.claim(taskId, bob, 100, pa); // wrong account
        vm.expectRevert(FederatedRewards.InvalidProof.selector);
        rewards.claim(taskId, alice, 100, none); // no proof
        rewards.claim(taskId, alice, 100, pa);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.NothingToClaim.selector, 100, 100));
        rewards.claim(taskId, alice, 100, pa);
        // carol has a zero leaf
        bytes32[] memory pc = proofOf(t1, carol, 0);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.NothingToClaim.selector, 0, 0));
        rewards.claim(taskId, carol, 0, pc);

        uint64 deadline = defaultParams().claimDeadline;
        vm.warp(deadline);
        bytes32[] memory pb = proofOf(t1, bob, 40);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.ClaimPeriodOver.selector, deadline));
        rewards.claim(taskId, bob, 40, pb);
    }

    function test_claim_singleLeafTree() public {
        uint256 taskId = createTask();
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(alice, uint256(9)))));
        post(taskId, 1, leaf, 9);
        vm.warp(block.timestamp + WINDOW);
        rewards.claim(taskId, alice, 9, new bytes32[](0));
        assertEq(token.balanceOf(alice), 9, "paid");
    }

    function test_claim_tasksAreIsolated() public {
        uint256 a = createTask();
        uint256 b = createTask();
        (bytes32[] memory t1,,) = tree3(100, 0, 0);
        post(a, 1, t1[0], 100);
        vm.warp(block.timestamp + WINDOW);
        bytes32[] memory p = proofOf(t1, alice, 100);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.NoFinalRound.selector, b));
        rewards.claim(b, alice, 100, p);
        rewards.claim(a, alice, 100, p);
        assertEq(rewards.claimed(b, alice), 0, "other task untouched");
    }

    function test_claim_isReentrancyGuarded() public {
        ReentrantToken re = new ReentrantToken();
        FederatedRewards.TaskParams memory p = defaultParams();
        p.token = address(re);
        re.mint(sponsor, POOL);
        vm.startPrank(sponsor);
        re.approve(address(rewards), POOL);
        uint256 taskId = rewards.createTask(p);
        vm.stopPrank();

        (bytes32[] memory t1,,) = tree3(100, 100, 0);
        post(taskId, 1, t1[0], 200);
        vm.warp(block.timestamp + WINDOW);
        bytes32[] memory pa = proofOf(t1, alice, 100);
        // on the payout transfer the token re-enters claim (for bob)
        re.arm(address(rewards), abi.encodeCall(rewards.claim, (taskId, bob, 100, proofOf(t1, bob, 100))));
        vm.expectRevert(ReentrancyGuard.ReentrancyGuardReentrantCall.selector);
        rewards.claim(taskId, alice, 100, pa);
    }

    // ------------------------------------------------------------------ slash

    function test_slash_movesStakeToPendingWithEvidence() public {
        uint256 taskId = createTask();
        doStake(taskId, alice, 500e18);
        FederatedRewards.Evidence memory e = evidence(ALICE_PK, taskId, 3, 1, H1);
        bytes32 id = rewards.slashIdOf(taskId, alice, 3, false);
        vm.prank(coordinator);
        vm.expectEmit(address(rewards));
        emit FederatedRewards.Slashed(
            taskId, alice, id, 3, 1, H1, e.verdictCode, e.reason, 200e18, uint64(block.timestamp) + WINDOW
        );
        bytes32 got = rewards.slash(taskId, alice, 3, 200e18, e);
        assertEq(got, id, "id");
        assertEq(id, keccak256(abi.encode(taskId, alice, uint64(3), false)), "id formula");

        (uint256 active,) = stakeOf(taskId, alice);
        assertEq(active, 300e18, "slashed from active");
        (address client, FederatedRewards.SlashStatus s, uint256 amount, uint64 finalAt) = rewards.slashInfo(taskId, id);
        assertEq(client, alice, "client");
        assertTrue(s == FederatedRewards.SlashStatus.Pending, "pending");
        assertEq(amount, 200e18, "amount");
        assertEq(finalAt, block.timestamp + WINDOW, "finalAt");
        assertEq(rewards.getTask(taskId).poolRemaining, POOL, "not in pool yet");
    }

    function test_slash_takesUnbondingStakeAndCaps() public {
        uint256 taskId = createTask();
        doStake(taskId, alice, 500e18);
        vm.prank(alice);
        rewards.requestUnstake(taskId, 400e18);
        FederatedRewards.Evidence memory e = evidence(ALICE_PK, taskId, 1, 0, H1);
        vm.prank(coordinator);
        bytes32 id = rewards.slash(taskId, alice, 1, 10_000e18, e);
        (uint256 active, uint256 unbonding) = stakeOf(taskId, alice);
        assertEq(active + unbonding, 0, "all of it");
        (,, uint256 amount,) = rewards.slashInfo(taskId, id);
        assertEq(amount, 500e18, "capped at available");

        vm.warp(block.timestamp + UNBONDING);
        vm.prank(alice);
        vm.expectRevert(FederatedRewards.NothingToWithdraw.selector);
        rewards.withdraw(taskId);
    }

    function test_slash_reverts() public {
        uint256 taskId = createTask();
        doStake(taskId, alice, 500e18);
        FederatedRewards.Evidence memory e = evidence(ALICE_PK, taskId, 3, 1, H1);

        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.UnknownTask.selector, 4));
        rewards.slash(4, alice, 3, 1, e);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.NotCoordinator.selector, stranger));
        rewards.slash(taskId, alice, 3, 1, e);

        vm.startPrank(coordinator);
        vm.expectRevert(FederatedRewards.ZeroAmount.selector);
        rewards.slash(taskId, alice, 3, 0, e);

        FederatedRewards.Evidence memory bad = evidence(ALICE_PK, taskId, 3, 1, H1);
        bad.verdictCode = 0;
        vm.expectRevert(FederatedRewards.InvalidVerdict.selector);
        rewards.slash(taskId, alice, 3, 1, bad);

        // signature by someone else, or over other fields
        vm.expectRevert(FederatedRewards.InvalidSignature.selector);
        rewards.slash(taskId, bob, 3, 1, e);
        vm.expectRevert(FederatedRewards.InvalidSignature.selector);
        rewards.slash(taskId, alice, 4, 1, e);
        bad = evidence(ALICE_PK, taskId, 3, 1, H1);
        bad.attempt = 2;
        vm.expectRevert(FederatedRewards.InvalidSignature.selector);
        rewards.slash(taskId, alice, 3, 1, bad);
        bad = evidence(ALICE_PK, taskId, 3, 1, H1);
        bad.updateHash = H2;
        vm.expectRevert(FederatedRewards.InvalidSignature.selector);
        rewards.slash(taskId, alice, 3, 1, bad);
        bad = evidence(ALICE_PK, taskId, 3, 1, H1);
        bad.signature = abi.encodePacked(bytes32(uint256(1)), bytes32(uint256(2)));
        vm.expectRevert(FederatedRewards.InvalidSignature.selector);
        rewards.slash(taskId, alice, 3, 1, bad);
        bad.signature = new bytes(65);
        vm.expectRevert(FederatedRewards.InvalidSignature.selector);
        rewards.slash(taskId, address(0), 3, 1, bad);
        vm.stopPrank();

        // a malleable (high-s) copy of a valid signature is rejected
        bad = evidence(ALICE_PK, taskId, 3, 1, H1);
        bad.signature = malleate(bad.signature);
        vm.prank(coordinator);
        vm.expectRevert(FederatedRewards.InvalidSignature.selector);
        rewards.slash(taskId, alice, 3, 1, bad);

        // signature for another task id
        uint256 other = createTask();
        bad = evidence(ALICE_PK, other, 3, 1, H1);
        vm.prank(coordinator);
        vm.expectRevert(FederatedRewards.InvalidSignature.selector);
        rewards.slash(taskId, alice, 3, 1, bad);

        vm.startPrank(coordinator);
        rewards.slash(taskId, alice, 3, 1e18, e);
        bytes32 id = rewards.slashIdOf(taskId, alice, 3, false);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.AlreadySlashed.selector, id));
        rewards.slash(taskId, alice, 3, 1e18, e);
        vm.stopPrank();

        // bob signed but has no stake
        FederatedRewards.Evidence memory eb = evidence(BOB_PK, taskId, 3, 1, H1);
        vm.prank(coordinator);
        vm.expectRevert(FederatedRewards.NothingToSlash.selector);
        rewards.slash(taskId, bob, 3, 1, eb);
    }

    function malleate(bytes memory sig) internal pure returns (bytes memory) {
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := mload(add(sig, 0x20))
            s := mload(add(sig, 0x40))
            v := byte(0, mload(add(sig, 0x60)))
        }
        uint256 n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
        return abi.encodePacked(r, bytes32(n - uint256(s)), v == 27 ? uint8(28) : uint8(27));
    }

    function test_slash_digestIsEip712() public view {
        bytes32 domain = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("FederatedRewards"),
                keccak256("1"),
                block.chainid,
                address(rewards)
            )
        );
        assertEq(rewards.DOMAIN_SEPARATOR(), domain, "domain");
        bytes32 typeHash = keccak256("Submission(uint256 taskId,uint64 round,uint32 attempt,bytes32 updateHash)");
        assertEq(rewards.SUBMISSION_TYPEHASH(), typeHash, "type hash");
        bytes32 structHash = keccak256(abi.encode(typeHash, uint256(5), uint64(6), uint32(7), H1));
        assertEq(
            rewards.hashSubmission(5, 6, 7, H1),
            keccak256(abi.encodePacked("\x19\x01", domain, structHash)),
            "digest"
        );
    }

    // ------------------------------------------------------------------ slashEquivocation

    function test_slashEquivocation_byAnyoneTakesAllStake() public {
        uint256 taskId = createTask();
        doStake(taskId, alice, 500e18);
        vm.prank(alice);
        rewards.requestUnstake(taskId, 100e18);
        FederatedRewards.SignedSubmission memory a = signed(ALICE_PK, taskId, 2, 0, H1);
        FederatedRewards.SignedSubmission memory b = signed(ALICE_PK, taskId, 2, 0, H2);
        bytes32 id = rewards.slashIdOf(taskId, alice, 2, true);
        vm.prank(stranger);
        vm.expectEmit(address(rewards));
        emit FederatedRewards.EquivocationSlashed(
            taskId, alice, id, 2, 0, H1, H2, stranger, 500e18, uint64(block.timestamp) + WINDOW
        );
        assertEq(rewards.slashEquivocation(taskId, alice, 2, a, b), id, "id");
        (uint256 active, uint256 unbonding) = stakeOf(taskId, alice);
        assertEq(active + unbonding, 0, "all stake");
        // a verdict slash for the same round is a separate record, but nothing is left
        FederatedRewards.Evidence memory e = evidence(ALICE_PK, taskId, 2, 0, H1);
        vm.prank(coordinator);
        vm.expectRevert(FederatedRewards.NothingToSlash.selector);
        rewards.slash(taskId, alice, 2, 1, e);
    }

    function test_slashEquivocation_reverts() public {
        uint256 taskId = createTask();
        doStake(taskId, alice, 500e18);
        FederatedRewards.SignedSubmission memory a = signed(ALICE_PK, taskId, 2, 0, H1);
        FederatedRewards.SignedSubmission memory b = signed(ALICE_PK, taskId, 2, 0, H2);
        FederatedRewards.SignedSubmission memory retry = signed(ALICE_PK, taskId, 2, 1, H2);
        FederatedRewards.SignedSubmission memory byBob = signed(BOB_PK, taskId, 2, 0, H2);

        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.UnknownTask.selector, 8));
        rewards.slashEquivocation(8, alice, 2, a, b);
        vm.expectRevert(FederatedRewards.NotEquivocation.selector);
        rewards.slashEquivocation(taskId, alice, 2, a, a); // same update
        vm.expectRevert(FederatedRewards.NotEquivocation.selector);
        rewards.slashEquivocation(taskId, alice, 2, a, retry); // a legitimate re-run attempt
        vm.expectRevert(FederatedRewards.InvalidSignature.selector);
        rewards.slashEquivocation(taskId, alice, 2, a, byBob);
        vm.expectRevert(FederatedRewards.InvalidSignature.selector);
        rewards.slashEquivocation(taskId, alice, 3, a, b); // signed for round 2
        FederatedRewards.SignedSubmission memory byBob1 = signed(BOB_PK, taskId, 2, 0, H1);
        vm.expectRevert(FederatedRewards.NothingToSlash.selector);
        rewards.slashEquivocation(taskId, bob, 2, byBob1, byBob);

        rewards.slashEquivocation(taskId, alice, 2, a, b);
        bytes32 id = rewards.slashIdOf(taskId, alice, 2, true);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.AlreadySlashed.selector, id));
        rewards.slashEquivocation(taskId, alice, 2, b, a);
    }

    // ------------------------------------------------------------------ vetoSlash / finalizeSlash

    function test_vetoSlash_restoresActiveAndUnbonding() public {
        uint256 taskId = createTask();
        doStake(taskId, alice, 500e18);
        vm.prank(alice);
        rewards.requestUnstake(taskId, 300e18);
        FederatedRewards.Evidence memory e = evidence(ALICE_PK, taskId, 1, 0, H1);
        vm.prank(coordinator);
        bytes32 id = rewards.slash(taskId, alice, 1, 350e18, e); // 200 active + 150 unbonding
        (uint256 active, uint256 unbonding) = stakeOf(taskId, alice);
        assertEq(active, 0, "active taken first");
        assertEq(unbonding, 150e18, "then unbonding");

        vm.prank(arbiter);
        vm.expectEmit(address(rewards));
        emit FederatedRewards.SlashVetoed(taskId, alice, id, 350e18);
        rewards.vetoSlash(taskId, id);
        (active, unbonding) = stakeOf(taskId, alice);
        assertEq(active, 200e18, "active back");
        assertEq(unbonding, 300e18, "unbonding back");
        (, FederatedRewards.SlashStatus s,,) = rewards.slashInfo(taskId, id);
        assertTrue(s == FederatedRewards.SlashStatus.Vetoed, "vetoed");
        assertEq(rewards.getTask(taskId).slashedToPool, 0, "nothing to the pool");
    }

    function test_vetoSlash_reverts() public {
        uint256 taskId = createTask();
        doStake(taskId, alice, 500e18);
        FederatedRewards.Evidence memory e = evidence(ALICE_PK, taskId, 1, 0, H1);
        vm.prank(coordinator);
        bytes32 id = rewards.slash(taskId, alice, 1, 100e18, e);

        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.UnknownTask.selector, 6));
        rewards.vetoSlash(6, id);
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.NotArbiter.selector, coordinator));
        rewards.vetoSlash(taskId, id);
        vm.startPrank(arbiter);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.SlashNotPending.selector, bytes32(uint256(1))));
        rewards.vetoSlash(taskId, bytes32(uint256(1)));
        uint64 finalAt = uint64(block.timestamp) + WINDOW;
        vm.warp(finalAt);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.ChallengeWindowOver.selector, finalAt));
        rewards.vetoSlash(taskId, id);
        vm.stopPrank();

        rewards.finalizeSlash(taskId, id);
        vm.prank(arbiter);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.SlashNotPending.selector, id));
        rewards.vetoSlash(taskId, id);
    }

    function test_finalizeSlash_creditsPoolWhichFundsRounds() public {
        FederatedRewards.TaskParams memory p = defaultParams();
        p.pool = 100;
        uint256 taskId = createTask(p);
        doStake(taskId, alice, 500e18);
        FederatedRewards.Evidence memory e = evidence(ALICE_PK, taskId, 1, 0, H1);
        vm.prank(coordinator);
        bytes32 id = rewards.slash(taskId, alice, 1, 200e18, e);
        vm.warp(block.timestamp + WINDOW);
        vm.prank(stranger);
        vm.expectEmit(address(rewards));
        emit FederatedRewards.SlashFinalized(taskId, alice, id, 200e18);
        rewards.finalizeSlash(taskId, id);
        FederatedRewards.TaskView memory v = rewards.getTask(taskId);
        assertEq(v.poolRemaining, 100 + 200e18, "pool grew");
        assertEq(v.slashedToPool, 200e18, "slashed to pool");
        assertEq(token.balanceOf(coordinator), 0, "coordinator gets nothing");
        post(taskId, 1, keccak256("r"), 150e18); // more than the original pool
    }

    function test_finalizeSlash_reverts() public {
        uint256 taskId = createTask();
        doStake(taskId, alice, 500e18);
        FederatedRewards.Evidence memory e = evidence(ALICE_PK, taskId, 1, 0, H1);
        vm.prank(coordinator);
        bytes32 id = rewards.slash(taskId, alice, 1, 100e18, e);

        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.UnknownTask.selector, 6));
        rewards.finalizeSlash(6, id);
        uint64 finalAt = uint64(block.timestamp) + WINDOW;
        vm.warp(finalAt - 1);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.ChallengeWindowOpen.selector, finalAt));
        rewards.finalizeSlash(taskId, id);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.SlashNotPending.selector, bytes32(0)));
        rewards.finalizeSlash(taskId, bytes32(0));
        vm.prank(arbiter);
        rewards.vetoSlash(taskId, id);
        vm.warp(finalAt);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.SlashNotPending.selector, id));
        rewards.finalizeSlash(taskId, id);
    }

    // ------------------------------------------------------------------ reclaim

    function test_reclaim_poolAfterEndThenUnclaimedAfterDeadline() public {
        uint256 taskId = createTask();
        FederatedRewards.TaskParams memory p = defaultParams();
        (bytes32[] memory t1,,) = tree3(100, 50, 0);
        post(taskId, 1, t1[0], 150);
        vm.warp(block.timestamp + WINDOW);
        rewards.claim(taskId, alice, 100, proofOf(t1, alice, 100));

        vm.warp(p.endTime);
        vm.prank(sponsor);
        vm.expectEmit(address(rewards));
        emit FederatedRewards.Reclaimed(taskId, sponsor, POOL - 150, 0);
        rewards.reclaim(taskId);
        assertEq(token.balanceOf(sponsor), POOL - 150, "unreserved pool");

        // bob may still claim before the deadline
        vm.prank(sponsor);
        vm.expectRevert(FederatedRewards.NothingToReclaim.selector);
        rewards.reclaim(taskId);

        vm.warp(p.claimDeadline);
        vm.prank(sponsor);
        vm.expectEmit(address(rewards));
        emit FederatedRewards.Reclaimed(taskId, sponsor, 0, 50);
        rewards.reclaim(taskId);
        assertEq(token.balanceOf(sponsor), POOL - 100, "bob's unclaimed 50 too");
        assertEq(token.balanceOf(address(rewards)), 0, "empty");
        FederatedRewards.TaskView memory v = rewards.getTask(taskId);
        assertEq(v.expiredTotal, 50, "expired");
        assertEq(v.reclaimedTotal, POOL - 100, "reclaimed");
        vm.prank(sponsor);
        vm.expectRevert(FederatedRewards.NothingToReclaim.selector);
        rewards.reclaim(taskId);
    }

    function test_reclaim_afterDeadlineFinalizesPendingRoundsFirst() public {
        uint256 taskId = createTask();
        FederatedRewards.TaskParams memory p = defaultParams();
        vm.warp(p.endTime - 1);
        post(taskId, 1, keccak256("r1"), 70);
        vm.warp(p.claimDeadline);
        vm.prank(sponsor);
        vm.expectEmit(address(rewards));
        emit FederatedRewards.Reclaimed(taskId, sponsor, POOL - 70, 70);
        rewards.reclaim(taskId);
        assertEq(token.balanceOf(sponsor), POOL, "everything back");
    }

    function test_reclaim_againAfterVetoAndSlash() public {
        uint256 taskId = createTask();
        FederatedRewards.TaskParams memory p = defaultParams();
        doStake(taskId, alice, 500e18);
        vm.warp(p.endTime - 1);
        post(taskId, 1, keccak256("r1"), 70);
        FederatedRewards.Evidence memory e = evidence(ALICE_PK, taskId, 1, 0, H1);
        vm.prank(coordinator);
        bytes32 id = rewards.slash(taskId, alice, 1, 100e18, e);
        vm.warp(p.endTime);
        vm.prank(sponsor);
        rewards.reclaim(taskId);
        assertEq(token.balanceOf(sponsor), POOL - 70, "unreserved");
        vm.prank(arbiter);
        rewards.veto(taskId, 1);
        vm.warp(p.endTime + WINDOW);
        rewards.finalizeSlash(taskId, id);
        vm.prank(sponsor);
        vm.expectEmit(address(rewards));
        emit FederatedRewards.Reclaimed(taskId, sponsor, 70 + 100e18, 0);
        rewards.reclaim(taskId);
        assertEq(token.balanceOf(sponsor), POOL + 100e18, "vetoed round and slashed stake");
    }

    function test_reclaim_reverts() public {
        uint256 taskId = createTask();
        FederatedRewards.TaskParams memory p = defaultParams();
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.UnknownTask.selector, 2));
        rewards.reclaim(2);
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.NotSponsor.selector, coordinator));
        rewards.reclaim(taskId);
        vm.warp(p.endTime - 1);
        vm.prank(sponsor);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.TaskNotEnded.selector, taskId, p.endTime));
        rewards.reclaim(taskId);
        vm.warp(p.endTime);
        vm.startPrank(sponsor);
        rewards.reclaim(taskId);
        vm.expectRevert(FederatedRewards.NothingToReclaim.selector);
        rewards.reclaim(taskId);
        vm.stopPrank();
    }

    // ------------------------------------------------------------------ views

    function test_views_unknownAndEmpty() public {
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.UnknownTask.selector, 1));
        rewards.getTask(1);
        vm.expectRevert(abi.encodeWithSelector(FederatedRewards.UnknownTask.selector, 1));
        rewards.roundInfo(1, 1);
        uint256 taskId = createTask();
        (FederatedRewards.RoundStatus s, bytes32 m, bytes32 r, uint256 total, uint64 finalAt) =
            rewards.roundInfo(taskId, 1);
        assertTrue(s == FederatedRewards.RoundStatus.None, "none");
        assertEq(uint256(m) + uint256(r) + total + finalAt, 0, "zeros");
        (address client, FederatedRewards.SlashStatus ss, uint256 amount, uint64 fa) =
            rewards.slashInfo(taskId, bytes32(0));
        assertEq(client, address(0), "no client");
        assertTrue(ss == FederatedRewards.SlashStatus.None, "none");
        assertEq(amount + fa, 0, "zeros");
        (uint256 active, uint256 unbonding, uint64 unlockAt) = rewards.stakeOf(taskId, alice);
        assertEq(active + unbonding + unlockAt, 0, "no stake");
    }

    function test_testToken_mintIsPublic() public {
        TestToken t = new TestToken();
        vm.prank(stranger);
        t.mint(alice, 5);
        assertEq(t.balanceOf(alice), 5, "minted");
        assertEq(t.decimals(), 18, "decimals");
    }
}
