// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Base} from "./Base.t.sol";
import {MerkleBuilder} from "./utils/MerkleBuilder.sol";
import {FederatedRewards} from "../src/FederatedRewards.sol";

/// @dev Scenarios for `forge test --gas-report --match-contract GasTest` (which runs each
/// top-level call as its own transaction: intrinsic gas, calldata and cold storage included).
/// The per-scenario numbers and the gas goals are checked on a real node by
/// scripts/anvil-check.mjs; this report gives min/median/max per function.
contract GasTest is Base {
    uint256 internal taskId;

    function setUp() public override {
        super.setUp();
        taskId = createTask();
    }

    /// @dev A root for `account`'s leaf in a tree of 2^depth leaves (siblings are arbitrary
    /// hashes), so the proof has the length of a real cohort's.
    function deepTree(address account, uint256 amount, uint256 depth)
        internal
        pure
        returns (bytes32 root, bytes32[] memory proof)
    {
        proof = new bytes32[](depth);
        root = MerkleBuilder.leaf(account, amount);
        for (uint256 i = 0; i < depth; i++) {
            proof[i] = keccak256(abi.encode("sibling", i));
            root = MerkleBuilder.hashPair(root, proof[i]);
        }
    }

    function test_gas_createTask() public {
        FederatedRewards.TaskParams memory p = defaultParams();
        token.mint(sponsor, p.pool);
        vm.prank(sponsor);
        token.approve(address(rewards), p.pool);
        vm.prank(sponsor);
        rewards.createTask(p);
    }

    function test_gas_stake_first() public {
        token.mint(alice, 1_000e18);
        vm.prank(alice);
        token.approve(address(rewards), 1_000e18);
        vm.prank(alice);
        rewards.stake(taskId, MIN_STAKE);
    }

    function test_gas_stake_topUp() public {
        token.mint(alice, 1_000e18);
        vm.prank(alice);
        token.approve(address(rewards), 1_000e18);
        vm.prank(alice);
        rewards.stake(taskId, MIN_STAKE);
        vm.prank(alice);
        rewards.stake(taskId, MIN_STAKE);
    }

    function test_gas_postRound_first() public {
        vm.prank(coordinator);
        rewards.postRound(taskId, 1, keccak256("model"), keccak256("root"), CAP);
    }

    function test_gas_postRound_later() public {
        for (uint64 r = 1; r <= 5; r++) {
            vm.prank(coordinator);
            rewards.postRound(taskId, r, keccak256(abi.encode("model", r)), keccak256(abi.encode("root", r)), CAP);
            vm.warp(block.timestamp + 1 hours);
        }
    }

    /// @dev First claim of a fresh account against a 1024-leaf tree, finalizing the round lazily.
    function test_gas_claim_firstWithLazyFinalize() public {
        (bytes32 root, bytes32[] memory proof) = deepTree(alice, 100e18, 10);
        post(taskId, 1, root, 100e18);
        vm.warp(block.timestamp + WINDOW);
        rewards.claim(taskId, alice, 100e18, proof);
    }

    /// @dev First claim of a fresh account against a 1024-leaf tree, rounds already final.
    function test_gas_claim_first() public {
        (bytes32 root, bytes32[] memory proof) = deepTree(alice, 100e18, 10);
        post(taskId, 1, root, 100e18);
        vm.warp(block.timestamp + WINDOW);
        rewards.finalizeRounds(taskId);
        rewards.claim(taskId, alice, 100e18, proof);
    }

    /// @dev A later claim of the same account, one round later, 1024-leaf tree.
    function test_gas_claim_again() public {
        (bytes32 root, bytes32[] memory proof) = deepTree(alice, 100e18, 10);
        post(taskId, 1, root, 100e18);
        vm.warp(block.timestamp + WINDOW);
        rewards.claim(taskId, alice, 100e18, proof);
        (root, proof) = deepTree(alice, 150e18, 10);
        post(taskId, 2, root, 50e18);
        vm.warp(block.timestamp + WINDOW);
        rewards.claim(taskId, alice, 150e18, proof);
    }

    function test_gas_slash() public {
        doStake(taskId, alice, 500e18);
        FederatedRewards.Evidence memory e = evidence(ALICE_PK, taskId, 1, 0, keccak256("u"));
        vm.prank(coordinator);
        rewards.slash(taskId, alice, 1, 100e18, e);
    }

    function test_gas_slashEquivocation() public {
        doStake(taskId, alice, 500e18);
        FederatedRewards.SignedSubmission memory a = signed(ALICE_PK, taskId, 1, 0, keccak256("u1"));
        FederatedRewards.SignedSubmission memory b = signed(ALICE_PK, taskId, 1, 0, keccak256("u2"));
        rewards.slashEquivocation(taskId, alice, 1, a, b);
    }

    function test_gas_unstakeAndWithdraw() public {
        doStake(taskId, alice, 500e18);
        vm.prank(alice);
        rewards.requestUnstake(taskId, 200e18);
        vm.warp(block.timestamp + UNBONDING);
        vm.prank(alice);
        rewards.withdraw(taskId);
    }

    function test_gas_vetoAndReclaim() public {
        post(taskId, 1, keccak256("r1"), 100);
        vm.prank(arbiter);
        rewards.veto(taskId, 1);
        vm.warp(defaultParams().endTime);
        vm.prank(sponsor);
        rewards.reclaim(taskId);
    }

    function test_gas_vetoSlashAndFinalizeSlash() public {
        doStake(taskId, alice, 500e18);
        FederatedRewards.Evidence memory e1 = evidence(ALICE_PK, taskId, 1, 0, keccak256("u"));
        FederatedRewards.Evidence memory e2 = evidence(ALICE_PK, taskId, 2, 0, keccak256("u"));
        vm.prank(coordinator);
        bytes32 id1 = rewards.slash(taskId, alice, 1, 100e18, e1);
        vm.prank(coordinator);
        bytes32 id2 = rewards.slash(taskId, alice, 2, 100e18, e2);
        vm.prank(arbiter);
        rewards.vetoSlash(taskId, id1);
        vm.warp(block.timestamp + WINDOW);
        rewards.finalizeSlash(taskId, id2);
    }
}
