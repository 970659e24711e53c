// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/// @title FederatedRewards
/// @notice Reward escrow, staking and slashing for fedstake federated-learning tasks.
///
/// A sponsor creates a task and escrows an ERC-20 reward pool. Clients stake the same token.
/// After each training round the task's coordinator posts the root of a Merkle tree of
/// *cumulative* per-account payouts together with the round's total, which is reserved from
/// the pool. A round becomes final once its challenge window has passed without a veto from
/// the task's arbiter; accounts then claim `cumulativeAmount - alreadyClaimed` against the
/// latest final root. The coordinator slashes stake with the client's own EIP-712 signature as
/// evidence; anyone slashes a client that signed two different updates for one
/// (task, round, attempt). Slashes are also vetoable during the challenge window, and slashed
/// stake goes back to the task's pool, never to the coordinator. After the task ends the
/// sponsor reclaims the unreserved pool, and after the claim deadline also what was never claimed.
///
/// Veto rule: vetoing round `r` also vetoes every round posted after `r` (all of them are still
/// inside their windows, since windows end in posting order), because their cumulative roots
/// include `r`'s payouts. Their totals return to the pool; the coordinator reposts under higher
/// round numbers (round numbers are strictly increasing over everything ever posted, so a vetoed
/// number is never reused). See docs/contracts.md.
/// @dev Amounts are kept in uint128 storage fields; every amount argument is bounded by
/// `MAX_AMOUNT` (2^112 - 1) so that sums cannot overflow in practice. Gas of every function is
/// independent of cohort size; finalization is a binary search over posted rounds.
contract FederatedRewards is EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    // ---------------------------------------------------------------------------------------
    // Types
    // ---------------------------------------------------------------------------------------

    /// @notice Parameters of a new task, given to {createTask}.
    /// @param specHash Hash of the task spec (task.toml); must be non-zero.
    /// @param token ERC-20 token of the reward pool and of stakes.
    /// @param coordinator The only address allowed to post rounds and to slash with a verdict.
    /// @param arbiter The address allowed to veto rounds and slashes during their challenge window.
    /// @param pool Amount escrowed from the sponsor (the caller) at creation.
    /// @param minStake Minimum non-zero active stake of a client.
    /// @param roundBudgetCap Largest `roundTotal` one round may reserve.
    /// @param challengeWindow Seconds after posting (or slashing) during which the arbiter may veto.
    /// @param unbondingPeriod Seconds between {requestUnstake} and the earliest {withdraw}.
    /// @param endTime Timestamp from which no round may be posted and no stake added; the
    ///        sponsor may reclaim the unreserved pool from then on.
    /// @param claimDeadline Timestamp from which claims are closed and the sponsor may reclaim
    ///        unclaimed payouts; at least `endTime + challengeWindow`.
    struct TaskParams {
        bytes32 specHash;
        address token;
        address coordinator;
        address arbiter;
        uint256 pool;
        uint256 minStake;
        uint256 roundBudgetCap;
        uint64 challengeWindow;
        uint64 unbondingPeriod;
        uint64 endTime;
        uint64 claimDeadline;
    }

    /// @notice Slashing evidence given by the coordinator to {slash}.
    /// @param attempt Attempt number of the round the client signed.
    /// @param updateHash Hash of the update the client submitted and signed.
    /// @param verdictCode Non-zero code of the verdict (see `VERDICT_*`; other non-zero codes allowed).
    /// @param reason Free 32-byte reason, e.g. the hash of the reproducible verdict data.
    /// @param signature The client's 65-byte EIP-712 signature over
    ///        `Submission(taskId, round, attempt, updateHash)`.
    struct Evidence {
        uint32 attempt;
        bytes32 updateHash;
        uint8 verdictCode;
        bytes32 reason;
        bytes signature;
    }

    /// @notice One signed submission, two of which prove equivocation in {slashEquivocation}.
    struct SignedSubmission {
        uint32 attempt;
        bytes32 updateHash;
        bytes signature;
    }

    /// @notice Status of a round number of a task.
    /// None: never posted. Pending: posted, inside its challenge window. Final: window passed
    /// without veto (claims use the latest final root). Vetoed: vetoed, directly or by cascade.
    enum RoundStatus {
        None,
        Pending,
        Final,
        Vetoed
    }

    /// @notice Status of a slash. A Pending slash past its `finalAt` can no longer be vetoed and
    /// becomes Final (its stake is credited to the pool) on {finalizeSlash}.
    enum SlashStatus {
        None,
        Pending,
        Vetoed,
        Final
    }

    /// @notice Everything about a task, as returned by {getTask}. Round-derived fields
    /// (`finalizedTotal`, `latestFinalRound`, `latestFinalRoot`) are computed as of the current
    /// block, whether or not finalization has been written to storage yet.
    struct TaskView {
        address sponsor;
        address token;
        address coordinator;
        address arbiter;
        bytes32 specHash;
        uint256 minStake;
        uint256 roundBudgetCap;
        uint64 challengeWindow;
        uint64 unbondingPeriod;
        uint64 endTime;
        uint64 claimDeadline;
        uint256 initialPool;
        uint256 poolRemaining;
        uint256 postedTotal;
        uint256 finalizedTotal;
        uint256 claimedTotal;
        uint256 slashedToPool;
        uint256 reclaimedTotal;
        uint256 expiredTotal;
        uint64 lastPostedRound;
        uint64 latestFinalRound;
        bytes32 latestFinalRoot;
    }

    /// @dev Storage of a task, packed by access pattern (slot comments). Timestamps fit in
    /// uint40 and durations in uint32 because both are bounded by `MAX_DURATION` from now;
    /// claimed and finalized totals fit in uint112 because postRound keeps the posted total
    /// (which bounds both) at most `MAX_AMOUNT`.
    struct Task {
        // slot 0: read by claim, postRound, stake, withdraw
        address token;
        uint40 claimDeadline;
        uint24 postCount; // live postings are 1..postCount
        uint32 challengeWindow;
        // slot 1: everything claim and finalization write; `live` = 1 keeps the slot non-zero
        // from creation, so no claim pays a zero-to-non-zero write for it
        uint112 claimedTotal;
        uint112 finalizedTotal; // sum of totals of postings 1..finalCount
        uint24 finalCount; // postings 1..finalCount are final and written as such
        uint8 live;
        // slot 2: read by postRound and stake
        address coordinator;
        uint40 endTime;
        uint32 unbondingPeriod;
        // slot 3
        address arbiter;
        uint64 lastRound; // highest round number ever posted, vetoed or not
        // slot 4
        address sponsor;
        // slot 5
        uint128 poolRemaining; // unreserved pool
        uint128 postedTotal; // sum of totals of live postings
        // slot 6
        uint128 minStake;
        uint128 roundBudgetCap;
        // slot 7
        uint128 initialPool;
        uint128 slashedToPool;
        // slot 8
        uint128 reclaimedTotal; // everything paid to the sponsor, expired payouts included
        uint128 expiredTotal; // finalized payouts never claimed before the deadline
        // slot 9
        bytes32 specHash;
    }

    /// @dev One posted round. `cumTotal` is the prefix sum of live round totals up to this one.
    struct Posting {
        bytes32 root;
        uint128 cumTotal;
        uint64 round;
        uint64 finalAt;
        bytes32 modelHash;
    }

    /// @dev A client's stake in one task.
    struct StakeInfo {
        uint128 active;
        uint128 unbonding;
        uint64 unlockAt;
    }

    /// @dev A slash; the amounts remember where the stake came from so a veto puts it back.
    struct SlashRecord {
        address client;
        uint64 finalAt;
        SlashStatus status;
        uint128 fromActive;
        uint128 fromUnbonding;
    }

    // ---------------------------------------------------------------------------------------
    // Constants and storage
    // ---------------------------------------------------------------------------------------

    /// @notice EIP-712 type hash of a client's signed submission.
    bytes32 public constant SUBMISSION_TYPEHASH =
        keccak256("Submission(uint256 taskId,uint64 round,uint32 attempt,bytes32 updateHash)");

    /// @notice Largest amount accepted by any function (2^112 - 1).
    uint256 public constant MAX_AMOUNT = type(uint112).max;

    /// @notice Longest accepted duration, and furthest accepted end time from now (10 years).
    uint64 public constant MAX_DURATION = 3650 days;

    /// @notice Verdict code: the update's norm exceeded the task's bound.
    uint8 public constant VERDICT_NORM_BOUND = 1;
    /// @notice Verdict code: rejected by robust aggregation with negative alignment.
    uint8 public constant VERDICT_REJECTED = 2;
    /// @notice Verdict code: a failed zero-knowledge bound proof.
    uint8 public constant VERDICT_FAILED_PROOF = 3;
    /// @notice Verdict code recorded for {slashEquivocation}.
    uint8 public constant VERDICT_EQUIVOCATION = 4;

    /// @notice Number of tasks created; task ids are 1..taskCount.
    uint256 public taskCount;

    mapping(uint256 taskId => Task) private _tasks;
    mapping(uint256 taskId => mapping(uint24 seq => Posting)) private _postings;
    mapping(uint256 taskId => mapping(uint64 round => uint24 seq)) private _roundSeq;
    mapping(uint256 taskId => mapping(address account => StakeInfo)) private _stakes;
    mapping(uint256 taskId => mapping(bytes32 slashId => SlashRecord)) private _slashes;

    /// @notice Cumulative amount already paid to `account` in task `taskId`.
    mapping(uint256 taskId => mapping(address account => uint256)) public claimed;

    // ---------------------------------------------------------------------------------------
    // Events
    // ---------------------------------------------------------------------------------------

    /// @notice A task was created and its pool escrowed.
    event TaskCreated(uint256 indexed taskId, address indexed sponsor, address indexed token, TaskParams params);
    /// @notice `account` added `amount` to its active stake, now `activeStake`.
    event Staked(uint256 indexed taskId, address indexed account, uint256 amount, uint256 activeStake);
    /// @notice `amount` moved from active to unbonding stake; all unbonding stake unlocks at `unlockAt`.
    event UnstakeRequested(
        uint256 indexed taskId, address indexed account, uint256 amount, uint256 unbondingStake, uint64 unlockAt
    );
    /// @notice Unbonding stake was paid back to `account`.
    event Withdrawn(uint256 indexed taskId, address indexed account, uint256 amount);
    /// @notice A round was posted; `roundTotal` is reserved from the pool until veto or forever.
    event RoundPosted(
        uint256 indexed taskId,
        uint64 indexed round,
        bytes32 modelHash,
        bytes32 cumulativeRoot,
        uint256 roundTotal,
        uint64 finalAt
    );
    /// @notice Every live round numbered `fromRound..toRound` was vetoed; `refunded` returned to the pool.
    event RoundsVetoed(uint256 indexed taskId, uint64 indexed fromRound, uint64 toRound, uint256 refunded);
    /// @notice Rounds up to `round` were written as final; claims now use its root.
    event RoundsFinalized(uint256 indexed taskId, uint64 indexed round, bytes32 cumulativeRoot, uint256 finalizedTotal);
    /// @notice `amount` was paid to `account`, whose cumulative claimed amount is now `cumulativeAmount`.
    event Claimed(uint256 indexed taskId, address indexed account, uint256 amount, uint256 cumulativeAmount);
    /// @notice The coordinator slashed `amount` of `client`'s stake, pending until `finalAt`.
    event Slashed(
        uint256 indexed taskId,
        address indexed client,
        bytes32 indexed slashId,
        uint64 round,
        uint32 attempt,
        bytes32 updateHash,
        uint8 verdictCode,
        bytes32 reason,
        uint256 amount,
        uint64 finalAt
    );
    /// @notice `reporter` proved that `client` signed two updates for one (task, round, attempt).
    event EquivocationSlashed(
        uint256 indexed taskId,
        address indexed client,
        bytes32 indexed slashId,
        uint64 round,
        uint32 attempt,
        bytes32 updateHashA,
        bytes32 updateHashB,
        address reporter,
        uint256 amount,
        uint64 finalAt
    );
    /// @notice The arbiter vetoed a slash; `amount` went back to the client's stake.
    event SlashVetoed(uint256 indexed taskId, address indexed client, bytes32 indexed slashId, uint256 amount);
    /// @notice A slash became final; `amount` was credited to the task's pool.
    event SlashFinalized(uint256 indexed taskId, address indexed client, bytes32 indexed slashId, uint256 amount);
    /// @notice The sponsor took back `fromPool` unreserved pool and `expired` unclaimed payouts.
    event Reclaimed(uint256 indexed taskId, address indexed sponsor, uint256 fromPool, uint256 expired);

    // ---------------------------------------------------------------------------------------
    // Errors
    // ---------------------------------------------------------------------------------------

    /// @notice No task has this id.
    error UnknownTask(uint256 taskId);
    /// @notice The spec hash is zero.
    error InvalidSpecHash();
    /// @notice A required address is zero.
    error ZeroAddress();
    /// @notice The pool is zero or above `MAX_AMOUNT`.
    error InvalidPool(uint256 pool);
    /// @notice The round budget cap is zero or above `MAX_AMOUNT`.
    error InvalidBudgetCap(uint256 cap);
    /// @notice The minimum stake is above `MAX_AMOUNT`.
    error InvalidMinStake(uint256 minStake);
    /// @notice The challenge window is zero or longer than `MAX_DURATION`.
    error InvalidChallengeWindow(uint64 challengeWindow);
    /// @notice The unbonding period is longer than `MAX_DURATION`.
    error InvalidUnbondingPeriod(uint64 unbondingPeriod);
    /// @notice The end time is not in the future, or more than `MAX_DURATION` away.
    error InvalidEndTime(uint64 endTime);
    /// @notice The claim deadline is before `endTime + challengeWindow`, or more than `MAX_DURATION` after `endTime`.
    error InvalidClaimDeadline(uint64 claimDeadline);
    /// @notice The token delivered a different amount than requested (fee-on-transfer tokens are unsupported).
    error UnsupportedToken(uint256 expected, uint256 received);
    /// @notice The amount is zero.
    error ZeroAmount();
    /// @notice The amount is above `MAX_AMOUNT`.
    error AmountTooLarge(uint256 amount);
    /// @notice The task has ended (no more stakes or rounds).
    error TaskEnded(uint256 taskId, uint64 endTime);
    /// @notice The task has not ended yet.
    error TaskNotEnded(uint256 taskId, uint64 endTime);
    /// @notice A non-zero active stake would be below the task's minimum.
    error StakeBelowMinimum(uint256 stake, uint256 minStake);
    /// @notice Not enough active stake.
    error InsufficientStake(uint256 available, uint256 requested);
    /// @notice No unbonding stake to withdraw.
    error NothingToWithdraw();
    /// @notice The unbonding stake unlocks only at `unlockAt`.
    error StillUnbonding(uint64 unlockAt);
    /// @notice Only the task's coordinator may do this.
    error NotCoordinator(address caller);
    /// @notice Only the task's arbiter may do this.
    error NotArbiter(address caller);
    /// @notice Only the task's sponsor may do this.
    error NotSponsor(address caller);
    /// @notice The task has posted the most rounds one task can hold (2^24 - 1).
    error TooManyRounds();
    /// @notice Round numbers must exceed every round number posted before.
    error RoundNotIncreasing(uint64 round, uint64 lastRound);
    /// @notice The cumulative root is zero.
    error InvalidRoot();
    /// @notice The round total is above the task's per-round cap.
    error RoundBudgetExceeded(uint256 roundTotal, uint256 cap);
    /// @notice The round total is above the unreserved pool.
    error InsufficientPool(uint256 roundTotal, uint256 poolRemaining);
    /// @notice The round is not a live posted round (never posted, or vetoed).
    error RoundNotPending(uint256 taskId, uint64 round);
    /// @notice The challenge window closed at `finalAt`.
    error ChallengeWindowOver(uint64 finalAt);
    /// @notice The challenge window is open until `finalAt`.
    error ChallengeWindowOpen(uint64 finalAt);
    /// @notice Claims closed at `claimDeadline`.
    error ClaimPeriodOver(uint64 claimDeadline);
    /// @notice No round of the task is final yet.
    error NoFinalRound(uint256 taskId);
    /// @notice The Merkle proof does not prove the leaf against the latest final root.
    error InvalidProof();
    /// @notice The cumulative amount does not exceed what was already claimed.
    error NothingToClaim(uint256 cumulativeAmount, uint256 alreadyClaimed);
    /// @notice Paying this claim would exceed the task's finalized round totals.
    error ExceedsFinalizedTotal(uint256 claimedTotal, uint256 finalizedTotal);
    /// @notice The verdict code is zero.
    error InvalidVerdict();
    /// @notice The signature is malformed or not the client's signature over the submission.
    error InvalidSignature();
    /// @notice The two submissions are not an equivocation (different attempts, or the same update).
    error NotEquivocation();
    /// @notice This (task, client, round, kind) was slashed already.
    error AlreadySlashed(bytes32 slashId);
    /// @notice The client has no active or unbonding stake in the task.
    error NothingToSlash();
    /// @notice The slash does not exist or is not pending.
    error SlashNotPending(bytes32 slashId);
    /// @notice The sponsor has nothing to reclaim now.
    error NothingToReclaim();

    // ---------------------------------------------------------------------------------------
    // Construction
    // ---------------------------------------------------------------------------------------

    /// @notice EIP-712 domain: name "FederatedRewards", version "1", this chain, this contract.
    constructor() EIP712("FederatedRewards", "1") {}

    // ---------------------------------------------------------------------------------------
    // Tasks
    // ---------------------------------------------------------------------------------------

    /// @notice Create a task and escrow `params.pool` tokens from the caller, who becomes its sponsor.
    /// @dev The caller must have approved `params.pool` to this contract.
    /// @return taskId The new task's id, sequential from 1.
    function createTask(TaskParams calldata params) external nonReentrant returns (uint256 taskId) {
        if (params.specHash == bytes32(0)) revert InvalidSpecHash();
        if (params.token == address(0) || params.coordinator == address(0) || params.arbiter == address(0)) {
            revert ZeroAddress();
        }
        if (params.pool == 0 || params.pool > MAX_AMOUNT) revert InvalidPool(params.pool);
        if (params.roundBudgetCap == 0 || params.roundBudgetCap > MAX_AMOUNT) {
            revert InvalidBudgetCap(params.roundBudgetCap);
        }
        if (params.minStake > MAX_AMOUNT) revert InvalidMinStake(params.minStake);
        if (params.challengeWindow == 0 || params.challengeWindow > MAX_DURATION) {
            revert InvalidChallengeWindow(params.challengeWindow);
        }
        if (params.unbondingPeriod > MAX_DURATION) revert InvalidUnbondingPeriod(params.unbondingPeriod);
        if (params.endTime <= block.timestamp || params.endTime > block.timestamp + MAX_DURATION) {
            revert InvalidEndTime(params.endTime);
        }
        if (
            uint256(params.claimDeadline) < uint256(params.endTime) + params.challengeWindow
                || uint256(params.claimDeadline) > uint256(params.endTime) + MAX_DURATION
        ) revert InvalidClaimDeadline(params.claimDeadline);

        taskId = ++taskCount;
        Task storage t = _tasks[taskId];
        t.token = params.token;
        t.endTime = uint40(params.endTime);
        t.coordinator = params.coordinator;
        t.claimDeadline = uint40(params.claimDeadline);
        t.arbiter = params.arbiter;
        t.challengeWindow = uint32(params.challengeWindow);
        t.sponsor = msg.sender;
        t.unbondingPeriod = uint32(params.unbondingPeriod);
        t.minStake = uint128(params.minStake);
        t.roundBudgetCap = uint128(params.roundBudgetCap);
        t.poolRemaining = uint128(params.pool);
        t.initialPool = uint128(params.pool);
        t.specHash = params.specHash;
        t.live = 1;
        emit TaskCreated(taskId, msg.sender, params.token, params);

        IERC20 token = IERC20(params.token);
        uint256 balanceBefore = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), params.pool);
        uint256 received = token.balanceOf(address(this)) - balanceBefore;
        if (received != params.pool) revert UnsupportedToken(params.pool, received);
    }

    /// @notice After the task's end, pay the sponsor the unreserved pool; after the claim
    /// deadline also every finalized payout that was never claimed. May be called again later
    /// (e.g. after a veto or a finalized slash adds to the pool).
    function reclaim(uint256 taskId) external nonReentrant {
        Task storage t = _task(taskId);
        if (msg.sender != t.sponsor) revert NotSponsor(msg.sender);
        if (block.timestamp < t.endTime) revert TaskNotEnded(taskId, t.endTime);

        uint256 fromPool = t.poolRemaining;
        uint256 expired;
        if (block.timestamp >= t.claimDeadline) {
            // Every posting is final by now: rounds are posted before endTime and
            // claimDeadline >= endTime + challengeWindow.
            _finalizeRounds(taskId, t);
            expired = uint256(t.finalizedTotal) - t.claimedTotal - t.expiredTotal;
            // forge-lint: disable-next-line(unsafe-typecast) expired <= finalizedTotal < 2^112
            t.expiredTotal += uint128(expired);
        }
        uint256 total = fromPool + expired;
        if (total == 0) revert NothingToReclaim();
        t.poolRemaining = 0;
        t.reclaimedTotal += SafeCast.toUint128(total);
        emit Reclaimed(taskId, msg.sender, fromPool, expired);
        IERC20(t.token).safeTransfer(msg.sender, total);
    }

    // ---------------------------------------------------------------------------------------
    // Stake
    // ---------------------------------------------------------------------------------------

    /// @notice Add `amount` to the caller's active stake in a task that has not ended.
    /// @dev The resulting active stake must be at least the task's `minStake`.
    function stake(uint256 taskId, uint256 amount) external nonReentrant {
        Task storage t = _task(taskId);
        if (block.timestamp >= t.endTime) revert TaskEnded(taskId, t.endTime);
        if (amount == 0) revert ZeroAmount();
        if (amount > MAX_AMOUNT) revert AmountTooLarge(amount);
        StakeInfo storage s = _stakes[taskId][msg.sender];
        uint256 active = uint256(s.active) + amount;
        if (active < t.minStake) revert StakeBelowMinimum(active, t.minStake);
        s.active = SafeCast.toUint128(active);
        emit Staked(taskId, msg.sender, amount, active);
        IERC20(t.token).safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @notice Move `amount` of the caller's active stake to unbonding. All of the caller's
    /// unbonding stake then unlocks `unbondingPeriod` from now (the timer restarts). Unbonding
    /// stake stays slashable until withdrawn. What remains active must be zero or at least `minStake`.
    function requestUnstake(uint256 taskId, uint256 amount) external nonReentrant {
        Task storage t = _task(taskId);
        if (amount == 0) revert ZeroAmount();
        StakeInfo storage s = _stakes[taskId][msg.sender];
        uint256 active = s.active;
        if (amount > active) revert InsufficientStake(active, amount);
        uint256 rest = active - amount;
        if (rest != 0 && rest < t.minStake) revert StakeBelowMinimum(rest, t.minStake);
        uint256 unbonding = uint256(s.unbonding) + amount;
        uint64 unlockAt = uint64(block.timestamp) + t.unbondingPeriod;
        // forge-lint: disable-next-line(unsafe-typecast) rest <= active, a uint128
        s.active = uint128(rest);
        s.unbonding = SafeCast.toUint128(unbonding);
        s.unlockAt = unlockAt;
        emit UnstakeRequested(taskId, msg.sender, amount, unbonding, unlockAt);
    }

    /// @notice Pay the caller all of its unbonding stake once it has unlocked.
    function withdraw(uint256 taskId) external nonReentrant {
        Task storage t = _task(taskId);
        StakeInfo storage s = _stakes[taskId][msg.sender];
        uint256 amount = s.unbonding;
        if (amount == 0) revert NothingToWithdraw();
        if (block.timestamp < s.unlockAt) revert StillUnbonding(s.unlockAt);
        s.unbonding = 0;
        emit Withdrawn(taskId, msg.sender, amount);
        IERC20(t.token).safeTransfer(msg.sender, amount);
    }

    // ---------------------------------------------------------------------------------------
    // Rounds
    // ---------------------------------------------------------------------------------------

    /// @notice Post a round: its model hash, the Merkle root of cumulative payouts of all live
    /// rounds up to this one, and this round's total, which is reserved from the pool.
    /// @dev Coordinator only, before the task's end. `round` must exceed every round number
    /// posted before (vetoed ones included). Constant gas: only the root is stored.
    function postRound(uint256 taskId, uint64 round, bytes32 modelHash, bytes32 cumulativeRoot, uint256 roundTotal)
        external
        nonReentrant
    {
        Task storage t = _task(taskId);
        if (msg.sender != t.coordinator) revert NotCoordinator(msg.sender);
        if (block.timestamp >= t.endTime) revert TaskEnded(taskId, t.endTime);
        if (round <= t.lastRound) revert RoundNotIncreasing(round, t.lastRound);
        if (cumulativeRoot == bytes32(0)) revert InvalidRoot();
        if (roundTotal > t.roundBudgetCap) revert RoundBudgetExceeded(roundTotal, t.roundBudgetCap);
        if (roundTotal > t.poolRemaining) revert InsufficientPool(roundTotal, t.poolRemaining);

        if (t.postCount == type(uint24).max) revert TooManyRounds();
        uint24 seq = t.postCount + 1;
        uint256 cumTotal = uint256(t.postedTotal) + roundTotal;
        if (cumTotal > MAX_AMOUNT) revert AmountTooLarge(cumTotal);
        uint64 finalAt = uint64(block.timestamp) + t.challengeWindow;
        Posting storage p = _postings[taskId][seq];
        p.root = cumulativeRoot;
        // forge-lint: disable-next-line(unsafe-typecast) cumTotal <= MAX_AMOUNT, checked above
        p.cumTotal = uint128(cumTotal);
        p.round = round;
        p.finalAt = finalAt;
        p.modelHash = modelHash;
        _roundSeq[taskId][round] = seq;
        t.postCount = seq;
        t.lastRound = round;
        // forge-lint: disable-next-line(unsafe-typecast) roundTotal <= poolRemaining, checked above
        t.poolRemaining -= uint128(roundTotal);
        // forge-lint: disable-next-line(unsafe-typecast) cumTotal <= MAX_AMOUNT, checked above
        t.postedTotal = uint128(cumTotal);
        emit RoundPosted(taskId, round, modelHash, cumulativeRoot, roundTotal, finalAt);
    }

    /// @notice Veto a round inside its challenge window (arbiter only). The round and every
    /// round posted after it pay nothing; their totals return to the pool.
    function veto(uint256 taskId, uint64 round) external nonReentrant {
        Task storage t = _task(taskId);
        if (msg.sender != t.arbiter) revert NotArbiter(msg.sender);
        uint24 seq = _liveSeq(taskId, t, round);
        Posting storage p = _postings[taskId][seq];
        if (block.timestamp >= p.finalAt) revert ChallengeWindowOver(p.finalAt);

        uint128 kept = seq == 1 ? 0 : _postings[taskId][seq - 1].cumTotal;
        uint128 refunded = t.postedTotal - kept;
        uint64 toRound = _postings[taskId][t.postCount].round;
        t.postCount = seq - 1;
        t.postedTotal = kept;
        t.poolRemaining += refunded;
        emit RoundsVetoed(taskId, round, toRound, refunded);
    }

    /// @notice Write every round whose challenge window has passed as final (anyone may call;
    /// {claim} and {reclaim} do the same lazily).
    /// @return round The latest final round number, 0 if none.
    function finalizeRounds(uint256 taskId) external nonReentrant returns (uint64 round) {
        Task storage t = _task(taskId);
        uint24 finalCount = _finalizeRounds(taskId, t);
        return finalCount == 0 ? 0 : _postings[taskId][finalCount].round;
    }

    /// @notice Pay `account` its cumulative payout minus what it already claimed, proven by a
    /// Merkle proof against the latest final root. Anyone may submit the claim for `account`.
    /// @dev Leaf: `keccak256(bytes.concat(keccak256(abi.encode(account, cumulativeAmount))))`
    /// (OpenZeppelin StandardMerkleTree with types ["address", "uint256"]).
    function claim(uint256 taskId, address account, uint256 cumulativeAmount, bytes32[] calldata proof)
        external
        nonReentrant
    {
        Task storage t = _task(taskId);
        if (block.timestamp >= t.claimDeadline) revert ClaimPeriodOver(t.claimDeadline);
        if (account == address(0)) revert ZeroAddress();
        uint24 finalCount = _finalizeRounds(taskId, t);
        if (finalCount == 0) revert NoFinalRound(taskId);

        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(account, cumulativeAmount))));
        if (!MerkleProof.verifyCalldata(proof, _postings[taskId][finalCount].root, leaf)) revert InvalidProof();

        uint256 already = claimed[taskId][account];
        if (cumulativeAmount <= already) revert NothingToClaim(cumulativeAmount, already);
        uint256 amount = cumulativeAmount - already;
        uint256 claimedTotal = uint256(t.claimedTotal) + amount;
        if (claimedTotal > t.finalizedTotal) revert ExceedsFinalizedTotal(claimedTotal, t.finalizedTotal);

        claimed[taskId][account] = cumulativeAmount;
        // forge-lint: disable-next-line(unsafe-typecast) claimedTotal <= finalizedTotal, a uint112
        t.claimedTotal = uint112(claimedTotal);
        emit Claimed(taskId, account, amount, cumulativeAmount);
        IERC20(t.token).safeTransfer(account, amount);
    }

    // ---------------------------------------------------------------------------------------
    // Slashing
    // ---------------------------------------------------------------------------------------

    /// @notice Slash up to `amount` of `client`'s stake (active first, then unbonding) with the
    /// client's EIP-712 signature over its submission as evidence (coordinator only). The slash
    /// is pending for the challenge window; the arbiter may veto it, else it becomes final and
    /// the stake goes to the task's pool. One such slash per (task, client, round).
    /// @return slashId `keccak256(abi.encode(taskId, client, round, false))`.
    function slash(uint256 taskId, address client, uint64 round, uint256 amount, Evidence calldata evidence)
        external
        nonReentrant
        returns (bytes32 slashId)
    {
        Task storage t = _task(taskId);
        if (msg.sender != t.coordinator) revert NotCoordinator(msg.sender);
        if (amount == 0) revert ZeroAmount();
        if (evidence.verdictCode == 0) revert InvalidVerdict();
        _checkSignature(taskId, round, evidence.attempt, evidence.updateHash, evidence.signature, client);

        slashId = slashIdOf(taskId, client, round, false);
        (uint256 slashed, uint64 finalAt) = _applySlash(taskId, t, slashId, client, amount);
        emit Slashed(
            taskId,
            client,
            slashId,
            round,
            evidence.attempt,
            evidence.updateHash,
            evidence.verdictCode,
            evidence.reason,
            slashed,
            finalAt
        );
    }

    /// @notice Slash all of `client`'s stake given two valid signatures by the client over
    /// different update hashes for the same (task, round, attempt). Anyone may call; the slash
    /// is pending and vetoable like any other. One such slash per (task, client, round).
    /// @return slashId `keccak256(abi.encode(taskId, client, round, true))`.
    function slashEquivocation(
        uint256 taskId,
        address client,
        uint64 round,
        SignedSubmission calldata a,
        SignedSubmission calldata b
    ) external nonReentrant returns (bytes32 slashId) {
        Task storage t = _task(taskId);
        if (a.attempt != b.attempt || a.updateHash == b.updateHash) revert NotEquivocation();
        _checkSignature(taskId, round, a.attempt, a.updateHash, a.signature, client);
        _checkSignature(taskId, round, b.attempt, b.updateHash, b.signature, client);

        slashId = slashIdOf(taskId, client, round, true);
        (uint256 slashed, uint64 finalAt) = _applySlash(taskId, t, slashId, client, type(uint256).max);
        emit EquivocationSlashed(
            taskId, client, slashId, round, a.attempt, a.updateHash, b.updateHash, msg.sender, slashed, finalAt
        );
    }

    /// @notice Veto a pending slash inside its challenge window (arbiter only); the stake goes
    /// back where it came from (active or unbonding).
    function vetoSlash(uint256 taskId, bytes32 slashId) external nonReentrant {
        Task storage t = _task(taskId);
        if (msg.sender != t.arbiter) revert NotArbiter(msg.sender);
        SlashRecord storage r = _slashes[taskId][slashId];
        if (r.status != SlashStatus.Pending) revert SlashNotPending(slashId);
        if (block.timestamp >= r.finalAt) revert ChallengeWindowOver(r.finalAt);
        r.status = SlashStatus.Vetoed;
        StakeInfo storage s = _stakes[taskId][r.client];
        s.active += r.fromActive;
        s.unbonding += r.fromUnbonding;
        emit SlashVetoed(taskId, r.client, slashId, uint256(r.fromActive) + r.fromUnbonding);
    }

    /// @notice Make a pending slash final after its challenge window and credit the slashed
    /// stake to the task's pool (anyone may call).
    function finalizeSlash(uint256 taskId, bytes32 slashId) external nonReentrant {
        Task storage t = _task(taskId);
        SlashRecord storage r = _slashes[taskId][slashId];
        if (r.status != SlashStatus.Pending) revert SlashNotPending(slashId);
        if (block.timestamp < r.finalAt) revert ChallengeWindowOpen(r.finalAt);
        r.status = SlashStatus.Final;
        uint128 amount = r.fromActive + r.fromUnbonding;
        t.poolRemaining += amount;
        t.slashedToPool += amount;
        emit SlashFinalized(taskId, r.client, slashId, amount);
    }

    // ---------------------------------------------------------------------------------------
    // Views
    // ---------------------------------------------------------------------------------------

    /// @notice Everything about a task (round-derived fields as of the current block).
    function getTask(uint256 taskId) external view returns (TaskView memory v) {
        Task storage t = _task(taskId);
        uint24 finalCount = _finalCountAt(taskId, t);
        v.sponsor = t.sponsor;
        v.token = t.token;
        v.coordinator = t.coordinator;
        v.arbiter = t.arbiter;
        v.specHash = t.specHash;
        v.minStake = t.minStake;
        v.roundBudgetCap = t.roundBudgetCap;
        v.challengeWindow = t.challengeWindow;
        v.unbondingPeriod = t.unbondingPeriod;
        v.endTime = t.endTime;
        v.claimDeadline = t.claimDeadline;
        v.initialPool = t.initialPool;
        v.poolRemaining = t.poolRemaining;
        v.postedTotal = t.postedTotal;
        v.claimedTotal = t.claimedTotal;
        v.slashedToPool = t.slashedToPool;
        v.reclaimedTotal = t.reclaimedTotal;
        v.expiredTotal = t.expiredTotal;
        v.lastPostedRound = t.lastRound;
        if (finalCount != 0) {
            Posting storage p = _postings[taskId][finalCount];
            v.finalizedTotal = p.cumTotal;
            v.latestFinalRound = p.round;
            v.latestFinalRoot = p.root;
        }
    }

    /// @notice A client's stake in a task.
    function stakeOf(uint256 taskId, address account)
        external
        view
        returns (uint256 active, uint256 unbonding, uint64 unlockAt)
    {
        StakeInfo storage s = _stakes[taskId][account];
        return (s.active, s.unbonding, s.unlockAt);
    }

    /// @notice A round's status (as of the current block) and posted data; zeros unless posted.
    function roundInfo(uint256 taskId, uint64 round)
        external
        view
        returns (RoundStatus status, bytes32 modelHash, bytes32 cumulativeRoot, uint256 roundTotal, uint64 finalAt)
    {
        Task storage t = _task(taskId);
        uint24 seq = _roundSeq[taskId][round];
        if (seq == 0) return (RoundStatus.None, 0, 0, 0, 0);
        Posting storage p = _postings[taskId][seq];
        if (seq > t.postCount || p.round != round) return (RoundStatus.Vetoed, 0, 0, 0, 0);
        uint128 before = seq == 1 ? 0 : _postings[taskId][seq - 1].cumTotal;
        status = block.timestamp >= p.finalAt ? RoundStatus.Final : RoundStatus.Pending;
        return (status, p.modelHash, p.root, p.cumTotal - before, p.finalAt);
    }

    /// @notice A slash's record. A Pending slash with `finalAt` in the past awaits {finalizeSlash}.
    function slashInfo(uint256 taskId, bytes32 slashId)
        external
        view
        returns (address client, SlashStatus status, uint256 amount, uint64 finalAt)
    {
        SlashRecord storage r = _slashes[taskId][slashId];
        return (r.client, r.status, uint256(r.fromActive) + r.fromUnbonding, r.finalAt);
    }

    /// @notice Id of the slash of `client` in `round` of `taskId`; `equivocation` selects
    /// {slashEquivocation} over {slash}.
    function slashIdOf(uint256 taskId, address client, uint64 round, bool equivocation)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(taskId, client, round, equivocation));
    }

    /// @notice EIP-712 digest a client signs for its submission.
    function hashSubmission(uint256 taskId, uint64 round, uint32 attempt, bytes32 updateHash)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(SUBMISSION_TYPEHASH, taskId, round, attempt, updateHash)));
    }

    /// @notice The EIP-712 domain separator of this contract on this chain.
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ---------------------------------------------------------------------------------------
    // Internals
    // ---------------------------------------------------------------------------------------

    function _task(uint256 taskId) private view returns (Task storage t) {
        t = _tasks[taskId];
        if (t.token == address(0)) revert UnknownTask(taskId);
    }

    /// @dev Sequence number of a live (posted, not vetoed) round, or revert.
    function _liveSeq(uint256 taskId, Task storage t, uint64 round) private view returns (uint24 seq) {
        seq = _roundSeq[taskId][round];
        if (seq == 0 || seq > t.postCount || _postings[taskId][seq].round != round) {
            revert RoundNotPending(taskId, round);
        }
    }

    /// @dev Number of postings final at this block: the largest seq with finalAt <= now.
    /// finalAt is non-decreasing in seq (constant window, non-decreasing timestamps), so this
    /// is a binary search between the stored finalCount and postCount.
    function _finalCountAt(uint256 taskId, Task storage t) private view returns (uint24) {
        uint24 lo = t.finalCount;
        uint24 hi = t.postCount;
        if (lo == hi) return lo;
        mapping(uint24 => Posting) storage postings = _postings[taskId];
        if (postings[hi].finalAt <= block.timestamp) return hi;
        // lo is final (or 0), hi is not.
        while (hi - lo > 1) {
            uint24 mid = lo + (hi - lo) / 2;
            if (postings[mid].finalAt <= block.timestamp) lo = mid;
            else hi = mid;
        }
        return lo;
    }

    /// @dev Write finalization of every posting whose window has passed; returns finalCount.
    function _finalizeRounds(uint256 taskId, Task storage t) private returns (uint24 finalCount) {
        finalCount = _finalCountAt(taskId, t);
        if (finalCount != t.finalCount) {
            Posting storage p = _postings[taskId][finalCount];
            t.finalCount = finalCount;
            t.finalizedTotal = uint112(p.cumTotal);
            emit RoundsFinalized(taskId, p.round, p.root, p.cumTotal);
        }
    }

    function _checkSignature(
        uint256 taskId,
        uint64 round,
        uint32 attempt,
        bytes32 updateHash,
        bytes calldata signature,
        address client
    ) private view {
        (address signer, ECDSA.RecoverError err,) =
            ECDSA.tryRecoverCalldata(hashSubmission(taskId, round, attempt, updateHash), signature);
        if (err != ECDSA.RecoverError.NoError || signer != client || client == address(0)) {
            revert InvalidSignature();
        }
    }

    /// @dev Move up to `amount` of the client's stake (active first) into a pending slash.
    function _applySlash(uint256 taskId, Task storage t, bytes32 slashId, address client, uint256 amount)
        private
        returns (uint256 slashed, uint64 finalAt)
    {
        SlashRecord storage r = _slashes[taskId][slashId];
        if (r.status != SlashStatus.None) revert AlreadySlashed(slashId);
        StakeInfo storage s = _stakes[taskId][client];
        uint256 active = s.active;
        uint256 available = active + s.unbonding;
        if (available == 0) revert NothingToSlash();
        slashed = amount < available ? amount : available;
        uint256 fromActive = slashed < active ? slashed : active;
        uint256 fromUnbonding = slashed - fromActive;
        // the parts are at most the uint128 balances they are taken from
        // forge-lint: disable-next-line(unsafe-typecast)
        s.active = uint128(active - fromActive);
        // forge-lint: disable-next-line(unsafe-typecast)
        s.unbonding -= uint128(fromUnbonding);
        finalAt = uint64(block.timestamp) + t.challengeWindow;
        r.client = client;
        r.finalAt = finalAt;
        r.status = SlashStatus.Pending;
        // forge-lint: disable-next-line(unsafe-typecast)
        r.fromActive = uint128(fromActive);
        // forge-lint: disable-next-line(unsafe-typecast)
        r.fromUnbonding = uint128(fromUnbonding);
    }
}
