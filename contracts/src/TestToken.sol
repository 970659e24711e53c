// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title TestToken
/// @notice An 18-decimal ERC-20 whose `mint` anyone may call. For local chains and tests only.
contract TestToken is ERC20 {
    constructor() ERC20("fedstake Test Token", "FST") {}

    /// @notice Mint `amount` new tokens to `to`. Unrestricted: never deploy this where tokens matter.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
