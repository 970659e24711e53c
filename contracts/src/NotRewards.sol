// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title NotRewards
/// @notice A contract that is not FederatedRewards: every call succeeds and returns no data.
/// For tests of clients that must notice they are talking to the wrong contract.
contract NotRewards {
    fallback() external payable {}
}
