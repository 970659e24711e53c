// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {MerkleBuilder} from "./utils/MerkleBuilder.sol";
import {FederatedRewards} from "../src/FederatedRewards.sol";
import {TestToken} from "../src/TestToken.sol";

/// @dev Shared fixture: a token, the rewards contract, a sponsor, a coordinator, an arbiter and
/// clients with known keys, plus helpers for tasks, stakes, rounds, trees and signatures.
abstract contract Base is Test {
    FederatedRewards internal rewards;
    TestToken internal token;

    address internal sponsor;
    address internal coordinator;
    address internal arbiter;
    address internal stranger;

    uint256 internal constant ALICE_PK = 0xA11CE;
    uint256 internal constant BOB_PK = 0xB0B;
    uint256 internal constant CAROL_PK = 0xCA401;
    address internal alice;
    address internal bob;
    address internal carol;

    uint256 internal constant POOL = 1_000_000e18;
    uint256 internal constant MIN_STAKE = 100e18;
    uint256 internal constant CAP = 10_000e18;
    uint64 internal constant WINDOW = 1 days;
    uint64 internal constant UNBONDING = 7 days;
    uint64 internal constant START = 1_700_000_000;

    function setUp() public virtual {
        vm.warp(START);
        rewards = new FederatedRewards();
        token = new TestToken();
        sponsor = makeAddr("sponsor");
        coordinator = makeAddr("coordinator");
        arbiter = makeAddr("arbiter");
        stranger = makeAddr("stranger");
        alice = vm.addr(ALICE_PK);
        bob = vm.addr(BOB_PK);
        carol = vm.addr(CAROL_PK);
        vm.label(alice, "alice");
        vm.label(bob, "bob");
        vm.label(carol, "carol");
        vm.label(address(rewards), "rewards");
        vm.label(address(token), "token");
    }

    function defaultParams() internal view returns (FederatedRewards.TaskParams memory p) {
        p.specHash = keccak256("task.toml");
        p.token = address(token);
        p.coordinator = coordinator;
        p.arbiter = arbiter;
        p.pool = POOL;
        p.minStake = MIN_STAKE;
        p.roundBudgetCap = CAP;
        p.challengeWindow = WINDOW;
        p.unbondingPeriod = UNBONDING;
        p.endTime = START + 30 days;
        p.claimDeadline = p.endTime + 60 days;
    }

    function createTask(FederatedRewards.TaskParams memory p) internal returns (uint256 taskId) {
        TestToken(p.token).mint(sponsor, p.pool);
        vm.startPrank(sponsor);
        TestToken(p.token).approve(address(rewards), p.pool);
        taskId = rewards.createTask(p);
        vm.stopPrank();
    }

    function createTask() internal returns (uint256) {
        return createTask(defaultParams());
    }

    function doStake(uint256 taskId, address who, uint256 amount) internal {
        token.mint(who, amount);
        vm.startPrank(who);
        token.approve(address(rewards), amount);
        rewards.stake(taskId, amount);
        vm.stopPrank();
    }

    function post(uint256 taskId, uint64 round, bytes32 root, uint256 total) internal {
        vm.prank(coordinator);
        rewards.postRound(taskId, round, keccak256(abi.encode("model", round)), root, total);
    }

    function sign(uint256 pk, uint256 taskId, uint64 round, uint32 attempt, bytes32 updateHash)
        internal
        view
        returns (bytes memory)
    {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, rewards.hashSubmission(taskId, round, attempt, updateHash));
        return abi.encodePacked(r, s, v);
    }

    function evidence(uint256 pk, uint256 taskId, uint64 round, uint32 attempt, bytes32 updateHash)
        internal
        view
        returns (FederatedRewards.Evidence memory e)
    {
        e.attempt = attempt;
        e.updateHash = updateHash;
        e.verdictCode = rewards.VERDICT_NORM_BOUND();
        e.reason = keccak256("norm 12.5 > bound 10");
        e.signature = sign(pk, taskId, round, attempt, updateHash);
    }

    function signed(uint256 pk, uint256 taskId, uint64 round, uint32 attempt, bytes32 updateHash)
        internal
        view
        returns (FederatedRewards.SignedSubmission memory s)
    {
        s.attempt = attempt;
        s.updateHash = updateHash;
        s.signature = sign(pk, taskId, round, attempt, updateHash);
    }

    /// @dev A 3-account tree (alice, bob, carol) with the given cumulative amounts.
    function tree3(uint256 a, uint256 b, uint256 c)
        internal
        view
        returns (bytes32[] memory tree, address[] memory accounts, uint256[] memory amounts)
    {
        accounts = new address[](3);
        amounts = new uint256[](3);
        accounts[0] = alice;
        accounts[1] = bob;
        accounts[2] = carol;
        amounts[0] = a;
        amounts[1] = b;
        amounts[2] = c;
        tree = MerkleBuilder.build(accounts, amounts);
    }

    function proofOf(bytes32[] memory tree, address account, uint256 amount) internal pure returns (bytes32[] memory) {
        return MerkleBuilder.proof(tree, account, amount);
    }

    function stakeOf(uint256 taskId, address who) internal view returns (uint256 active, uint256 unbonding) {
        (active, unbonding,) = rewards.stakeOf(taskId, who);
    }

    function status(uint256 taskId, uint64 round) internal view returns (FederatedRewards.RoundStatus s) {
        (s,,,,) = rewards.roundInfo(taskId, round);
    }
}
