// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @dev Builds Merkle trees exactly like OpenZeppelin's `StandardMerkleTree.of(values,
/// ["address", "uint256"])` (sorted leaf hashes, array layout, sorted-pair hashing), so roots
/// match the JS library and proofs verify with OpenZeppelin's `MerkleProof`.
library MerkleBuilder {
    function leaf(address account, uint256 amount) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(account, amount))));
    }

    function hashPair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encodePacked(a, b)) : keccak256(abi.encodePacked(b, a));
    }

    /// @dev The whole tree in OpenZeppelin's array layout; tree[0] is the root.
    function build(address[] memory accounts, uint256[] memory amounts) internal pure returns (bytes32[] memory tree) {
        uint256 n = accounts.length;
        require(n > 0 && n == amounts.length, "MerkleBuilder: bad input");
        bytes32[] memory hashes = new bytes32[](n);
        for (uint256 i = 0; i < n; i++) {
            hashes[i] = leaf(accounts[i], amounts[i]);
        }
        // insertion sort, ascending (the library sorts leaves by hash)
        for (uint256 i = 1; i < n; i++) {
            bytes32 h = hashes[i];
            uint256 j = i;
            while (j > 0 && hashes[j - 1] > h) {
                hashes[j] = hashes[j - 1];
                j--;
            }
            hashes[j] = h;
        }
        tree = new bytes32[](2 * n - 1);
        for (uint256 i = 0; i < n; i++) {
            tree[tree.length - 1 - i] = hashes[i];
        }
        for (uint256 k = tree.length - n; k > 0; k--) {
            uint256 i = k - 1;
            tree[i] = hashPair(tree[2 * i + 1], tree[2 * i + 2]);
        }
    }

    function root(address[] memory accounts, uint256[] memory amounts) internal pure returns (bytes32) {
        return build(accounts, amounts)[0];
    }

    /// @dev Proof for (account, amount), which must be one of the tree's leaves.
    function proof(bytes32[] memory tree, address account, uint256 amount) internal pure returns (bytes32[] memory) {
        bytes32 l = leaf(account, amount);
        uint256 n = (tree.length + 1) / 2;
        uint256 j = type(uint256).max;
        for (uint256 i = tree.length - n; i < tree.length; i++) {
            if (tree[i] == l) {
                j = i;
                break;
            }
        }
        require(j != type(uint256).max, "MerkleBuilder: leaf not in tree");
        uint256 depth = 0;
        for (uint256 k = j; k > 0; k = (k - 1) / 2) {
            depth++;
        }
        bytes32[] memory p = new bytes32[](depth);
        uint256 d = 0;
        while (j > 0) {
            p[d++] = tree[j % 2 == 1 ? j + 1 : j - 1];
            j = (j - 1) / 2;
        }
        return p;
    }
}
