//! The report, from results files written by hand.

use super::*;
use serde_json::json;

fn results(date: &str, idle_kb: f64, fanout_p99: f64, dm_p99: f64, req_per_s: f64) -> Results {
    let value = json!({
        "profile": "standard",
        "date": date,
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "dirty": true,
        "command": "scripts/bench.sh",
        "machine": {"nproc": 2, "cpu": "AMD EPYC", "memory": "23 GiB",
                    "kernel": "Linux 6.18", "postgres": "15.20"},
        "servers": {"memory": "PORT=1 chat-server"},
        "setup": ["psql -c 'CREATE DATABASE x'"],
        "runs": [
            {"id": "idle", "label": "19,000 sockets", "store": "memory",
             "command": "chat-bench idle --connections 19000",
             "load_before": 1.5, "load_after": 2.25,
             "result": {"mode": "idle", "ok": true, "connections": 19000,
                        "connected": 19000, "connect_rate_per_s": 7512.3,
                        "connect_latency": {"p99_ms": 12.5},
                        "rss_before_bytes": 9_437_184u64,
                        "rss_after_bytes": 200_000_000u64,
                        "rss_per_socket_kb": idle_kb}},
            {"id": "fanout.memory", "label": "memory store",
             "command": "chat-bench fanout --receivers 1000 --rate 500",
             "result": {"mode": "fanout", "ok": true, "receivers": 1000,
                        "rate_target": 500, "lost": 0, "unsent": 0, "planned": 5000,
                        "persisted": 5000, "delivered": 5_000_000u64,
                        "deliveries_per_s": 499_000.0,
                        "latency": {"p50_ms": 3.0, "p99_ms": fanout_p99, "max_ms": 80.0}}},
            {"id": "dm.postgres", "label": "PostgreSQL",
             "command": "chat-bench dm --rate 10000",
             "result": {"mode": "dm", "ok": true, "rate_target": 10000,
                        "planned": 100_000, "persisted": 100_000, "delivered": 100_000,
                        "persisted_per_s": 9_990.1, "delivered_per_s": 9_985.0,
                        "delivery_latency": {"p99_ms": dm_p99}}},
            {"id": "http.postgres.c64", "label": "PostgreSQL, 64 clients",
             "command": "chat-bench http --clients 64",
             "result": {"mode": "http", "ok": true, "clients": 64,
                        "req_per_s": req_per_s, "latency": {"p50_ms": 5.5, "p99_ms": 10.7}}},
            {"id": "pgbench.trigger.c1", "label": "ordering trigger, 1 client",
             "command": "pgbench -c 1 -T 10 -f insert.sql db",
             "result": {"mode": "pgbench", "ok": true, "tps": 1937.4,
                        "latency_avg_ms": 0.516, "failed": 0}}
        ]
    });
    serde_json::from_value(value).expect("a valid results file")
}

#[test]
fn numbers_are_grouped_and_rounded_by_size() {
    assert_eq!(number(0.0), "0");
    assert_eq!(number(19_000.0), "19,000");
    assert_eq!(number(1_234_567.8), "1,234,568");
    assert_eq!(number(7.9123), "7.91");
    assert_eq!(decimal(40.0), "40.0");
    assert_eq!(decimal(8.0), "8.00");
    assert_eq!(decimal(12.34), "12.3");
    assert_eq!(decimal(499_000.0), "499,000");
    assert_eq!(number(-1_500.0), "-1,500");
    assert_eq!(decimal(-0.001), "0.00");
    assert_eq!(decimal(f64::NAN), "–");
}

#[test]
fn changes_say_which_way_is_better() {
    assert_eq!(
        change(Some(110.0), Some(100.0), Better::Higher),
        "+10.0 % (better)"
    );
    assert_eq!(
        change(Some(110.0), Some(100.0), Better::Lower),
        "+10.0 % (worse)"
    );
    assert_eq!(
        change(Some(90.0), Some(100.0), Better::Lower),
        "-10.0 % (better)"
    );
    assert_eq!(change(Some(5.0), Some(5.0), Better::Lower), "=");
    assert_eq!(
        change(Some(3.0), Some(0.0), Better::Lower),
        "from 0 (worse)"
    );
    assert_eq!(change(Some(3.0), None, Better::Lower), "–");
}

#[test]
fn targets_are_judged_on_the_runs_figures() {
    let good = results("2026-11-25T10:00:00Z", 7.5, 40.0, 20.0, 11_000.0);
    let md = render(&good, None);
    assert!(
        md.contains("| Memory per idle socket at 19,000 sockets ≤ 8 KiB | 19,000 sockets | 7.50 KiB per socket, 19,000 of 19,000 sockets open | **met** | – | – |"),
        "{md}"
    );
    assert!(md.contains("| memory store | 5,000 of 5,000 stored, lost 0, unsent 0, delivery p99 40.0 ms, 499,000 deliveries/s | **met** |"), "{md}");
    assert!(
        md.contains("100,000 of 100,000 delivered), delivery p99 20.0 ms | **met** |"),
        "{md}"
    );
    assert!(
        md.contains("| 11,000 req/s, p99 10.7 ms | reported (no threshold) |"),
        "{md}"
    );
    // Runs the results file does not hold.
    assert!(md.contains("| fanout.postgres | – | not run |"), "{md}");

    let bad = results("2026-11-26T10:00:00Z", 19.3, 60.0, 30.0, 9_000.0);
    let md = render(&bad, Some(&good));
    assert!(md.contains("19.3 KiB per socket, 19,000 of 19,000 sockets open | **not met** | 7.50 KiB per socket, 19,000 of 19,000 sockets open | **met** |"), "{md}");
    assert!(
        md.contains("delivery p99 60.0 ms, 499,000 deliveries/s | **not met** |"),
        "{md}"
    );
    assert!(md.contains("delivery p99 30.0 ms | **not met** |"), "{md}");
}

#[test]
fn a_run_with_other_parameters_is_not_comparable() {
    let mut quick = results("2026-11-25T10:00:00Z", 7.5, 40.0, 20.0, 11_000.0);
    quick.runs[0].result["connections"] = json!(2000);
    quick.runs[0].result["connected"] = json!(2000);
    quick.runs[1].result["receivers"] = json!(200);
    quick.runs[2].result["rate_target"] = json!(1000);
    let md = render(&quick, None);
    assert!(
        md.contains("| not comparable (ran 2,000 sockets) |"),
        "{md}"
    );
    assert!(
        md.contains("| not comparable (ran 200 receivers at 500 msg/s) |"),
        "{md}"
    );
    assert!(
        md.contains("| not comparable (offered 1,000 msg/s) |"),
        "{md}"
    );
}

#[test]
fn the_fast_sender_target_needs_every_message_in_order_and_acks_in_time() {
    let run = |result: Value| Run {
        id: "sender.postgres".into(),
        result,
        ..Run::default()
    };
    let good = json!({"mode": "fanout", "ok": true, "senders": 1, "rate_target": 2000,
                      "planned": 20_000, "persisted": 20_000, "out_of_order": 0,
                      "acks_out_of_order": 0,
                      "stored_order": {"found": 20_000, "out_of_order": 0},
                      "persist_latency": {"p99_ms": 12.5}});
    let (summary, verdict) = judge_sender(&run(good.clone()));
    assert_eq!(verdict, Verdict::Met, "{summary}");
    assert_eq!(
        summary,
        "20,000 of 20,000 stored (20,000 found in the history, 0 out of order there), \
         0 acks or deliveries out of order, ack p99 12.5 ms"
    );
    for (pointer, bad) in [
        ("/acks_out_of_order", json!(1)),
        ("/stored_order/out_of_order", json!(2)),
        ("/stored_order/found", json!(19_999)),
        ("/persisted", json!(19_000)),
        ("/persist_latency/p99_ms", json!(50.0)),
    ] {
        let mut result = good.clone();
        *result.pointer_mut(pointer).expect("a field") = bad;
        assert_eq!(judge_sender(&run(result)).1, Verdict::NotMet, "{pointer}");
    }
    let mut unchecked = good.clone();
    unchecked["stored_order"] = Value::Null;
    assert_eq!(judge_sender(&run(unchecked)).1, Verdict::NotMet);
    let mut slower = good;
    slower["rate_target"] = json!(500);
    assert!(matches!(
        judge_sender(&run(slower)).1,
        Verdict::NotComparable(_)
    ));
}

#[test]
fn the_changes_target_needs_every_message_and_every_update_in_time() {
    let run = |result: Value| Run {
        id: "dm.postgres.changes".into(),
        result,
        ..Run::default()
    };
    let good = json!({"mode": "dm", "ok": true, "rate_target": 10000,
                      "planned": 90_000, "persisted": 90_000, "delivered": 90_000,
                      "persisted_per_s": 8_999.0, "delivered_per_s": 8_998.0,
                      "delivery_latency": {"p99_ms": 12.0},
                      "changes": {"percent": 10, "planned": 10_000, "stored": 10_000,
                                  "delivered": 10_000, "lost": 0, "mismatched": 0,
                                  "unexpected": 0, "delivery_latency": {"p99_ms": 14.5}}});
    let (summary, verdict) = judge_dm_changes(&run(good.clone()));
    assert_eq!(verdict, Verdict::Met, "{summary}");
    assert_eq!(
        summary,
        "messages: 8,999 stored/s, 8,998 delivered/s (90,000 of 90,000 delivered), delivery p99 12.0 ms; \
         changes: 10,000 of 10,000 applied, 10,000 updates received, lost 0, update p99 14.5 ms"
    );
    for (pointer, bad) in [
        ("/changes/lost", json!(1)),
        ("/changes/delivered", json!(9_999)),
        ("/changes/stored", json!(9_999)),
        ("/changes/mismatched", json!(1)),
        ("/changes/unexpected", json!(1)),
        ("/changes/delivery_latency/p99_ms", json!(25.0)),
        ("/delivery_latency/p99_ms", json!(25.0)),
        ("/delivered", json!(89_999)),
    ] {
        let mut result = good.clone();
        *result.pointer_mut(pointer).expect("a field") = bad;
        assert_eq!(
            judge_dm_changes(&run(result)).1,
            Verdict::NotMet,
            "{pointer}"
        );
    }
    let mut without = good.clone();
    without["changes"] = Value::Null;
    assert_eq!(
        judge_dm_changes(&run(without)).1,
        Verdict::NotComparable("0 % changes".into())
    );
    let mut quick = good;
    quick["rate_target"] = json!(1000);
    assert!(matches!(
        judge_dm_changes(&run(quick)).1,
        Verdict::NotComparable(_)
    ));
}

#[test]
fn the_conversation_list_is_reported_at_eight_clients() {
    let run = |clients: u64, ok: bool| Run {
        id: "reads.postgres.c8".into(),
        result: json!({"mode": "conversations", "ok": ok, "clients": clients,
                       "first_page": 50, "req_per_s": 812.5,
                       "latency": {"p50_ms": 9.1, "p99_ms": 31.0}}),
        ..Run::default()
    };
    let (summary, verdict) = judge_conversations(&run(8, true));
    assert_eq!(verdict, Verdict::Reported);
    assert_eq!(
        summary,
        "812 req/s, p99 31.0 ms, 50 conversations on the first page"
    );
    assert!(judge_conversations(&run(8, false))
        .0
        .ends_with(", with errors"));
    assert_eq!(
        judge_conversations(&run(2, true)).1,
        Verdict::NotComparable("ran 2 clients".into())
    );
}

#[test]
fn a_lost_message_fails_the_fanout_target_whatever_the_latency() {
    let mut r = results("d", 7.5, 10.0, 20.0, 1.0);
    r.runs[1].result["lost"] = json!(3);
    r.runs[1].result["ok"] = json!(false);
    let run = r.run("fanout.memory").expect("in the file");
    assert_eq!(judge_fanout(run).1, Verdict::NotMet);
}

#[test]
fn unanswered_sends_fail_the_target_and_show_as_errors() {
    let before = results("d", 7.5, 10.0, 20.0, 1.0);
    let mut now = results("d", 7.5, 10.0, 20.0, 1.0);
    let fanout = &mut now.runs[1].result;
    fanout["ok"] = json!(false);
    fanout["persisted"] = json!(4_307);
    fanout["errors"] = json!({"unanswered": 693, "ws_error_frame": 2});
    let run = now.run("fanout.memory").expect("in the file");
    assert_eq!(judge_fanout(run).1, Verdict::NotMet);
    now.runs[3].result["errors"] = json!({"http_500": 2, "transport": 1});
    let md = render(&now, Some(&before));
    assert!(
        md.contains(
            "|  | errors (sends never answered, error frames, HTTP failures) | 695 | – | – |"
        ),
        "{md}"
    );
    assert!(
        md.contains(
            "|  | errors (sends never answered, error frames, HTTP failures) | 3 | – | – |"
        ),
        "{md}"
    );
    assert!(
        md.contains("| memory store | clean run (nothing failed or lost) | **no** | yes | – |"),
        "{md}"
    );
}

#[test]
fn every_figure_is_compared_with_the_previous_run() {
    let before = results("2026-11-25T10:00:00Z", 8.0, 40.0, 20.0, 10_000.0);
    let now = results("2026-11-26T10:00:00Z", 7.0, 40.0, 20.0, 11_000.0);
    let md = render(&now, Some(&before));
    assert!(md.contains("- This run (`standard` profile): 2026-11-26T10:00:00Z from commit `0123456789` (working tree with uncommitted changes)."), "{md}");
    assert!(
        md.contains("- Previous run: 2026-11-25T10:00:00Z from commit `0123456789`"),
        "{md}"
    );
    assert!(
        md.contains("- Machine: 2 CPUs (AMD EPYC), 23 GiB memory, Linux 6.18, PostgreSQL 15.20;"),
        "{md}"
    );
    assert!(
        md.contains("| 19,000 sockets | clean run (nothing failed or lost) | yes | yes | – |"),
        "{md}"
    );
    assert!(
        md.contains("|  | RSS per socket (KiB) | 7.00 | 8.00 | -12.5 % (better) |"),
        "{md}"
    );
    assert!(
        md.contains("|  | server RSS before (MiB) | 9.00 | 9.00 | = |"),
        "{md}"
    );
    assert!(
        md.contains("|  | load average, 1 min (before → after) | 1.50 → 2.25 | 1.50 → 2.25 | – |"),
        "{md}"
    );
    assert!(md.contains("| PostgreSQL, 64 clients | clean run (nothing failed or lost) | yes | yes | – |\n|  | requests per second | 11,000 | 10,000 | +10.0 % (better) |"), "{md}");
    assert!(
        md.contains(
            "| ordering trigger, 1 client | rows (transactions) per second | 1,937 | 1,937 | = |"
        ),
        "{md}"
    );
    assert!(md.contains("### Commands"), "{md}");
    assert!(md.contains("# server, memory store\nPORT=1 chat-server\n# setup\npsql -c 'CREATE DATABASE x'\n# runs, in order\nchat-bench idle --connections 19000\n"), "{md}");
    // Sections of modes the file has no run of are left out.
    let sparse =
        Results::parse(r#"{"runs":[{"id":"h","result":{"mode":"http"}}]}"#).expect("parses");
    let md = render(&sparse, None);
    assert!(
        md.contains("### POST /api/messages") && !md.contains("### Idle sockets"),
        "{md}"
    );
}

#[test]
fn older_files_with_missing_fields_still_render() {
    let sparse =
        Results::parse(r#"{"runs":[{"id":"idle","result":{"mode":"idle"}}]}"#).expect("parses");
    let md = render(&sparse, Some(&Results::default()));
    assert!(
        md.contains("- This run (`standard` profile): an unknown date from commit `unknown`."),
        "{md}"
    );
    assert!(
        md.contains("| idle | load average, 1 min (before → after) | – | – | – |"),
        "{md}"
    );
    assert!(
        md.contains("| – KiB per socket, 0 of 0 sockets open | not comparable (ran 0 sockets) |"),
        "{md}"
    );
}

#[test]
fn only_the_text_between_the_markers_is_replaced() {
    let doc = format!("# Benchmarks\n\nintro\n\n{BEGIN}\nold\ntable\n{END}\n\n## Analysis\nkept\n");
    let new = splice(&doc, "new section\n").expect("markers present");
    assert_eq!(
        new,
        format!("# Benchmarks\n\nintro\n\n{BEGIN}\nnew section\n{END}\n\n## Analysis\nkept\n")
    );
    // Splicing again with the same text changes nothing.
    assert_eq!(splice(&new, "new section\n").expect("markers present"), new);
    assert!(splice("# no markers\n", "x").is_err());
    assert!(splice(&format!("{END}\n{BEGIN}\n"), "x").is_err());
}
