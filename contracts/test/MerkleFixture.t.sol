// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Base} from "./Base.t.sol";
import {MerkleBuilder} from "./utils/MerkleBuilder.sol";
import {FederatedRewards} from "../src/FederatedRewards.sol";

/// @dev The tree of test/fixtures/merkle.json was built by scripts/merkle.mjs with
/// OpenZeppelin's StandardMerkleTree (the script the Rust tests compare against). The contract
/// must accept its proofs, and the Solidity tree builder used by the other tests must agree.
contract MerkleFixtureTest is Base {
    function readFixture()
        internal
        view
        returns (bytes32 root, address[] memory accounts, uint256[] memory amounts, string memory json)
    {
        json = vm.readFile("test/fixtures/merkle.json");
        root = vm.parseJsonBytes32(json, ".root");
        accounts = vm.parseJsonAddressArray(json, ".accounts");
        amounts = vm.parseJsonUintArray(json, ".amounts");
    }

    function test_fixture_builderMatchesStandardMerkleTree() public view {
        (bytes32 root, address[] memory accounts, uint256[] memory amounts,) = readFixture();
        assertEq(accounts.length, 7, "fixture size");
        assertEq(MerkleBuilder.root(accounts, amounts), root, "same root as @openzeppelin/merkle-tree");
    }

    function test_fixture_proofsClaimOnChain() public {
        (bytes32 root, address[] memory accounts, uint256[] memory amounts, string memory json) = readFixture();
        uint256 total;
        for (uint256 i = 0; i < amounts.length; i++) {
            total += amounts[i];
        }
        FederatedRewards.TaskParams memory p = defaultParams();
        p.pool = total;
        p.roundBudgetCap = total;
        uint256 taskId = createTask(p);
        post(taskId, 1, root, total);
        vm.warp(block.timestamp + WINDOW);
        for (uint256 i = 0; i < accounts.length; i++) {
            bytes32[] memory proof = vm.parseJsonBytes32Array(json, string.concat(".proofs[", vm.toString(i), "]"));
            if (amounts[i] == 0) {
                vm.expectRevert(abi.encodeWithSelector(FederatedRewards.NothingToClaim.selector, 0, 0));
            }
            rewards.claim(taskId, accounts[i], amounts[i], proof);
            assertEq(token.balanceOf(accounts[i]), amounts[i], "paid");
        }
        assertEq(token.balanceOf(address(rewards)), 0, "all claimed");
    }
}
