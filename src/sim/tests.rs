//! The simulator on small rooms: delivery, baselines, determinism.

use super::*;

fn small() -> Scenario {
    Scenario {
        n: 200,
        duration: Duration::from_secs(25),
        ..Scenario::default()
    }
}

#[test]
fn ours_delivers_everything_in_a_quiet_room() {
    let r = run_meshrtc(&small());
    assert_eq!(r.delivery, 1.0, "{r:?}");
    assert!(r.links_max <= 24, "{r:?}");
    assert!(
        r.hops_max as f64 <= 2.0 * (200f64 / 8.0).log2() + 3.0,
        "{r:?}"
    );
}

#[test]
fn a_dead_bridge_costs_ours_nothing_and_the_seed_a_cell() {
    let s = Scenario {
        bridge_kills: 3,
        ..small()
    };
    let ours = run_meshrtc(&s);
    let seed = run_genosrtc(&s);
    assert_eq!(ours.heal_ms, Some(0.0), "{ours:?}");
    assert_eq!(ours.delivery, 1.0, "{ours:?}");
    assert!(seed.heal_ms.unwrap_or(f64::MAX) > 1_000.0, "{seed:?}");
    assert!(seed.delivery < 1.0, "{seed:?}");
}

#[test]
fn newcomers_take_the_roster_over_their_first_link_and_miss_nothing() {
    let s = Scenario {
        churn_per_s: 4.0,
        ..small()
    };
    let r = run_meshrtc(&s);
    assert_eq!(r.delivery, 1.0, "{r:?}");
    let (p50, max) = (
        r.roster_ms_p50.expect("newcomers"),
        r.roster_ms_max.expect("newcomers"),
    );
    // Announce (1.5 s), the room's seal (0.5 s), a link (0.3 s), then the transfer.
    assert!(p50 >= 2_000.0 && max <= 5_000.0, "{r:?}");
}

#[test]
fn the_plumtree_baseline_delivers_everything_over_small_views() {
    let r = run_plumtree(&Scenario {
        bridge_kills: 3,
        ..small()
    });
    assert_eq!(r.delivery, 1.0, "{r:?}");
    assert!(r.links_mean <= 10.0, "{r:?}");
}

#[test]
fn same_seed_same_result() {
    let a = run_meshrtc(&small());
    let b = run_meshrtc(&small());
    assert_eq!(
        serde_json::to_string(&a).ok(),
        serde_json::to_string(&b).ok()
    );
}
