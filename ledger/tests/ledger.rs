//! One task's whole life on both ledger backends: the embedded EVM and a
//! real anvil node over JSON-RPC run the same scenario through the same
//! `Ledger` code, and every balance must reconcile to the wei with the
//! payout policy.
//!
//! The anvil run needs the npm anvil that `scripts/install-contract-deps.sh`
//! installs (the test command runs it first).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy_node_bindings::Anvil;
use fedstake_ledger::chain::{Chain, EmbeddedChain, RpcChain};
use fedstake_ledger::{
    Evidence, Ledger, LedgerError, RoundState, SignedSubmission, TaskParams, deploy_test_token,
    mint_test_token,
};
use fedstake_protocol::Submission;
use fedstake_rewards::{CumulativePayouts, PayoutTree, Score, split_budget};

const TOKEN: u128 = 1_000_000_000_000_000_000;
const POOL: u128 = 1_000 * TOKEN;
const BUDGET: u128 = 100 * TOKEN;
const STAKE: u128 = 20 * TOKEN;
const SLASH: u128 = 5 * TOKEN;
const WINDOW: u64 = 3_600;
const UNBONDING: u64 = 7_200;

fn u(amount: u128) -> U256 {
    U256::from(amount)
}

/// The people of the scenario: a sponsor, the coordinator, the arbiter and
/// three clients.
struct Cast {
    sponsor: PrivateKeySigner,
    coordinator: PrivateKeySigner,
    arbiter: PrivateKeySigner,
    clients: [PrivateKeySigner; 3],
}

/// The scores the coordinator measured in a round, in client order.
fn pay_round(
    payouts: &mut CumulativePayouts<Address>,
    cast: &Cast,
    scores: [u64; 3],
) -> (PayoutTree, U256) {
    let scores: Vec<Score> = scores.iter().map(|s| Score::from_raw(*s)).collect();
    let round = split_budget(BUDGET, &scores);
    let credits = cast
        .clients
        .iter()
        .map(|c| c.address())
        .zip(round.payouts.iter().copied());
    payouts.credit_round(credits).unwrap();
    let tree = PayoutTree::from_payouts(payouts).unwrap();
    (tree, u(round.payouts.iter().sum()))
}

async fn lifecycle<C: Chain>(chain: C, cast: Cast) {
    let Cast {
        sponsor,
        coordinator,
        arbiter,
        clients,
    } = &cast;
    let ledger = Ledger::deploy(chain, sponsor).await.unwrap();
    let token = deploy_test_token(ledger.chain(), sponsor).await.unwrap();
    mint_test_token(ledger.chain(), sponsor, token, sponsor.address(), u(POOL))
        .await
        .unwrap();
    for client in clients {
        mint_test_token(ledger.chain(), sponsor, token, client.address(), u(STAKE))
            .await
            .unwrap();
    }

    // The sponsor escrows the pool; without an allowance it is told so.
    let now = ledger.chain().timestamp().await.unwrap();
    let params = TaskParams {
        specHash: B256::repeat_byte(0x5e),
        token,
        coordinator: coordinator.address(),
        arbiter: arbiter.address(),
        pool: u(POOL),
        minStake: u(10 * TOKEN),
        roundBudgetCap: u(BUDGET),
        challengeWindow: WINDOW,
        unbondingPeriod: UNBONDING,
        endTime: now + 10 * 86_400,
        claimDeadline: now + 40 * 86_400,
    };
    let refused = ledger
        .create_task(sponsor, params.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, LedgerError::MissingAllowance { .. }),
        "{refused}"
    );
    ledger.approve(sponsor, token, u(POOL)).await.unwrap();
    let (task, _) = ledger.create_task(sponsor, params).await.unwrap();

    // Three clients stake; one more than it holds is refused by name.
    for client in clients {
        ledger.approve(client, token, u(STAKE)).await.unwrap();
    }
    let refused = ledger
        .stake(&clients[0], task, u(STAKE + 1))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, LedgerError::InsufficientBalance { .. }),
        "{refused}"
    );
    for client in clients {
        ledger.stake(client, task, u(STAKE)).await.unwrap();
    }

    // Two rounds paid by score; the third client is rejected in round 2.
    let mut payouts = CumulativePayouts::new();
    let (tree_1, total_1) = pay_round(&mut payouts, &cast, [3, 2, 1]);
    ledger
        .post_round(
            coordinator,
            task,
            1,
            B256::repeat_byte(1),
            tree_1.root(),
            total_1,
        )
        .await
        .unwrap();
    let (tree_2, total_2) = pay_round(&mut payouts, &cast, [1, 1, 0]);
    ledger
        .post_round(
            coordinator,
            task,
            2,
            B256::repeat_byte(2),
            tree_2.root(),
            total_2,
        )
        .await
        .unwrap();
    let refused = ledger
        .post_round(&clients[0], task, 3, B256::ZERO, tree_2.root(), u(1))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("NotCoordinator"), "{refused}");

    // The poisoner is slashed with its own signed submission as evidence.
    let poisoner = &clients[2];
    let update_hash = B256::repeat_byte(0xba);
    let submission = Submission::new(task, 2, 0, update_hash);
    let signature = submission.sign(poisoner, ledger.domain()).unwrap();
    let evidence = |signature: Vec<u8>| Evidence {
        attempt: 0,
        updateHash: update_hash,
        verdictCode: 2,
        reason: B256::repeat_byte(0xee),
        signature: signature.into(),
    };
    // A signature the coordinator made itself is not the client's: refused.
    let forged = submission.sign(coordinator, ledger.domain()).unwrap();
    let refused = ledger
        .slash(
            coordinator,
            task,
            poisoner.address(),
            2,
            u(SLASH),
            evidence(forged.as_bytes().to_vec()),
        )
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("InvalidSignature"),
        "{refused}"
    );
    let (slash_id, _) = ledger
        .slash(
            coordinator,
            task,
            poisoner.address(),
            2,
            u(SLASH),
            evidence(signature.as_bytes().to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(
        ledger
            .stake_of(task, poisoner.address())
            .await
            .unwrap()
            .active,
        u(STAKE - SLASH)
    );

    // Equivocation needs two different updates signed for one round.
    let same = SignedSubmission {
        attempt: 0,
        updateHash: update_hash,
        signature: signature.as_bytes().to_vec().into(),
    };
    let refused = ledger
        .slash_equivocation(&clients[0], task, poisoner.address(), 2, same.clone(), same)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("NotEquivocation"), "{refused}");

    // A third round is posted, then vetoed: it pays nothing.
    let mut vetoed_payouts = payouts.clone();
    let (tree_3, total_3) = pay_round(&mut vetoed_payouts, &cast, [1, 1, 1]);
    ledger
        .post_round(
            coordinator,
            task,
            3,
            B256::repeat_byte(3),
            tree_3.root(),
            total_3,
        )
        .await
        .unwrap();
    ledger.veto(arbiter, task, 3).await.unwrap();
    assert_eq!(
        ledger.round_state(task, 3).await.unwrap(),
        RoundState::Vetoed
    );
    assert_eq!(
        ledger.round_state(task, 2).await.unwrap(),
        RoundState::Pending
    );

    // Nothing is claimable before the windows pass.
    let first = clients[0].address();
    let refused = ledger
        .claim(
            &clients[0],
            task,
            first,
            tree_2.amount(first).unwrap(),
            tree_2.proof(first).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("NoFinalRound"), "{refused}");

    ledger.chain().advance_time(WINDOW + 1).await.unwrap();
    ledger
        .finalize_slash(&clients[0], task, slash_id)
        .await
        .unwrap();

    // Every client claims its cumulative total with a proof built here.
    for client in clients {
        let account = client.address();
        let amount = tree_2.amount(account).unwrap();
        if amount.is_zero() {
            continue;
        }
        ledger
            .claim(
                client,
                task,
                account,
                amount,
                tree_2.proof(account).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(ledger.claimed(task, account).await.unwrap(), amount);
        // A second claim of the same total has nothing to pay.
        let again = ledger.claim(
            client,
            task,
            account,
            amount,
            tree_2.proof(account).unwrap(),
        );
        assert!(
            again
                .await
                .unwrap_err()
                .to_string()
                .contains("NothingToClaim")
        );
    }

    // Clients leave: unbonding, then withdrawal after the period.
    for client in clients {
        let active = ledger
            .stake_of(task, client.address())
            .await
            .unwrap()
            .active;
        ledger.request_unstake(client, task, active).await.unwrap();
    }
    ledger.chain().advance_time(UNBONDING + 1).await.unwrap();
    for client in clients {
        ledger.withdraw(client, task).await.unwrap();
    }

    // After the task ends the sponsor takes back what was not paid out,
    // slashed stake included.
    ledger.chain().advance_time(10 * 86_400).await.unwrap();
    ledger.reclaim(sponsor, task).await.unwrap();

    // Everything reconciles to the wei with the policy.
    let paid = payouts.paid();
    assert_eq!(u(paid), total_1 + total_2);
    assert_eq!(
        ledger.balance_of(token, sponsor.address()).await.unwrap(),
        u(POOL - paid + SLASH)
    );
    for (i, client) in clients.iter().enumerate() {
        let earned = payouts.total(&client.address());
        let slashed = if i == 2 { SLASH } else { 0 };
        assert_eq!(
            ledger.balance_of(token, client.address()).await.unwrap(),
            u(STAKE + earned - slashed),
            "client {i}"
        );
    }
    assert_eq!(
        ledger.balance_of(token, ledger.address()).await.unwrap(),
        U256::ZERO
    );
}

#[tokio::test]
async fn embedded_chain_runs_a_task_from_escrow_to_reclaim() {
    let dir = tempfile::tempdir().unwrap();
    let chain = EmbeddedChain::open(&dir.path().join("chain.db"), 31337).unwrap();
    let cast = Cast {
        sponsor: PrivateKeySigner::random(),
        coordinator: PrivateKeySigner::random(),
        arbiter: PrivateKeySigner::random(),
        clients: [
            PrivateKeySigner::random(),
            PrivateKeySigner::random(),
            PrivateKeySigner::random(),
        ],
    };
    lifecycle(chain, cast).await;
}

#[tokio::test]
async fn anvil_runs_a_task_from_escrow_to_reclaim() {
    let anvil = Anvil::at(common::anvil_path()).spawn();
    let keys: Vec<PrivateKeySigner> = anvil.keys().iter().map(|k| k.clone().into()).collect();
    let chain = RpcChain::connect(&anvil.endpoint()).unwrap();
    let cast = Cast {
        sponsor: keys[0].clone(),
        coordinator: keys[1].clone(),
        arbiter: keys[2].clone(),
        clients: [keys[3].clone(), keys[4].clone(), keys[5].clone()],
    };
    lifecycle(chain, cast).await;
}
