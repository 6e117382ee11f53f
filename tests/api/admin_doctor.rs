//! `parley doctor` against the simulator, configured well and badly: the back office's test
//! button, the library and the real binary.

use mattermost_sim::{MattermostSim, SimConfig, SimUser};
use parley::{
    app::accounts::Role,
    app::doctor::{self, Verdict},
    config::{MattermostSettings, Settings},
};
use serde_json::Value;

use crate::helpers::{
    backoffice::{audit, signed_in},
    binary::run_binary,
    spawn_app,
};

#[tokio::test]
async fn test_connection_shows_the_doctors_checks() {
    let app = spawn_app().await;
    let admin = signed_in(&app, "a@example.com", Role::Admin).await;

    let response = admin.submit("/admin/settings/test", &[]).await;

    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("All essential checks passed"), "{html}");
    for check in [
        "reachable",
        "token",
        "team",
        "requests_channel",
        "channels",
        "channel_deletion",
        "post_size",
        "file_uploads",
        "callbacks",
    ] {
        assert!(html.contains(&format!("data-check=\"{check}\"")), "{check}");
    }
    assert!(
        html.contains("EnableAPIChannelDeletion"),
        "the simulator has it off by default"
    );
    assert!(
        audit(&app)
            .await
            .iter()
            .any(|(a, _, _)| a == "connection_tested")
    );
}

struct DoctorWorld {
    sim: MattermostSim,
    bot: SimUser,
    team_id: String,
    channel_id: String,
    settings: Settings,
    _dir: tempfile::TempDir,
}

/// A simulator set up as the README says, and settings pointing at it.
async fn doctor_world() -> DoctorWorld {
    let sim = MattermostSim::start_with(SimConfig {
        enable_api_channel_deletion: true,
        ..SimConfig::default()
    })
    .await;
    let team = sim.create_team("support", "Support");
    let bot = sim.create_bot("parley", "Parley");
    let channel = sim.create_channel(&team, "requests", "Requests", false);
    sim.add_team_member(&team, &bot.id);
    sim.add_channel_member(&channel, &bot.id);
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::for_data_dir(dir.path().to_path_buf());
    settings.public_url = "https://chat-widget.example.com".parse().unwrap();
    settings.mattermost = Some(MattermostSettings {
        url: sim.url().parse().unwrap(),
        token: bot.token.clone().into(),
        team: "support".into(),
        channel: "requests".into(),
    });
    DoctorWorld {
        sim,
        bot,
        team_id: team,
        channel_id: channel,
        settings,
        _dir: dir,
    }
}

fn mm(settings: &mut Settings) -> &mut MattermostSettings {
    settings.mattermost.as_mut().unwrap()
}

#[tokio::test]
async fn the_doctor_passes_a_well_configured_server_and_leaves_nothing_behind() {
    let world = doctor_world().await;

    let report = doctor::run(&world.settings).await;

    assert!(report.passed(), "{report}");
    for c in &report.checks {
        // Without parley's button key the callback check can only state its condition
        // (tests/api/startup.rs runs it for real).
        let expected = if c.id == "callbacks" {
            Verdict::Skipped
        } else {
            Verdict::Ok
        };
        assert_eq!(c.verdict, expected, "{report}");
    }
    let left: Vec<Value> = world
        .sim
        .channels_in_team(&world.team_id)
        .into_iter()
        .filter(|c| {
            c["name"]
                .as_str()
                .unwrap_or_default()
                .starts_with("parley-doctor")
        })
        .filter(|c| c["delete_at"] == 0)
        .collect();
    assert!(left.is_empty(), "no live test channel is left: {left:?}");
    assert!(!report.to_string().contains("FAILED"), "{report}");
    assert!(
        world
            .sim
            .request_log()
            .iter()
            .any(|(m, p, s)| m == "DELETE" && p.contains("/channels/") && *s == 200),
        "the test channel was deleted"
    );
}

#[tokio::test]
async fn each_doctor_check_fails_on_its_own() {
    type Setup = fn(&mut DoctorWorld);
    let cases: Vec<(&str, Setup, &str, Verdict, &str)> = vec![
        (
            "not Mattermost",
            |w| mm(&mut w.settings).url = format!("{}/somewhere", w.sim.url()).parse().unwrap(),
            "reachable",
            Verdict::Failed,
            "not as Mattermost",
        ),
        (
            "unreachable",
            |w| mm(&mut w.settings).url = "http://127.0.0.1:9".parse().unwrap(),
            "reachable",
            Verdict::Failed,
            "cannot be used",
        ),
        (
            "bad token",
            |w| mm(&mut w.settings).token = "not-a-token".to_owned().into(),
            "token",
            Verdict::Failed,
            "refuses the token",
        ),
        (
            "user token",
            |w| {
                let user = w.sim.create_user("human", "Hu", "Man");
                w.sim.add_team_member(&w.team_id, &user.id);
                w.sim.add_channel_member(&w.channel_id, &user.id);
                mm(&mut w.settings).token = user.token.into();
            },
            "token",
            Verdict::Warning,
            "not a bot",
        ),
        (
            "unknown team",
            |w| mm(&mut w.settings).team = "nosuchteam".into(),
            "team",
            Verdict::Failed,
            "not found",
        ),
        (
            "bot not in the team",
            |w| {
                let team = w.sim.create_team("sales", "Sales");
                let channel = w.sim.create_channel(&team, "requests", "Requests", false);
                w.sim.add_channel_member(&channel, &w.bot.id);
                mm(&mut w.settings).team = "sales".into();
            },
            "team",
            Verdict::Failed,
            "parley",
        ),
        (
            "unknown channel",
            |w| mm(&mut w.settings).channel = "nosuchchannel".into(),
            "requests_channel",
            Verdict::Failed,
            "nosuchchannel",
        ),
        (
            "bot not in the channel",
            |w| {
                w.sim.create_channel(&w.team_id, "lonely", "Lonely", false);
                mm(&mut w.settings).channel = "lonely".into();
            },
            "requests_channel",
            Verdict::Failed,
            "not a member",
        ),
        (
            "no private channels",
            |w| {
                w.sim
                    .set_config(|c| c.team_user_can_create_private_channels = false)
            },
            "channels",
            Verdict::Failed,
            "may not create private channels",
        ),
        (
            "no permanent deletion",
            |w| w.sim.set_config(|c| c.enable_api_channel_deletion = false),
            "channel_deletion",
            Verdict::Warning,
            "EnableAPIChannelDeletion",
        ),
        (
            "no file attachments",
            |w| w.sim.set_config(|c| c.enable_file_attachments = false),
            "file_uploads",
            Verdict::Warning,
            "disabled",
        ),
        (
            "small files only",
            |w| w.sim.set_config(|c| c.max_file_size = 1_000_000),
            "file_uploads",
            Verdict::Warning,
            "only up to 1 MB",
        ),
        (
            "private public URL",
            |w| w.settings.public_url = "http://10.1.2.3:8080".parse().unwrap(),
            "callbacks",
            // Without parley's button key (no database here) the doctor cannot click a test
            // button: it states the condition instead of warning.
            Verdict::Skipped,
            "AllowedUntrustedInternalConnections",
        ),
        (
            "not configured",
            |w| w.settings.mattermost = None,
            "config",
            Verdict::Failed,
            "not configured",
        ),
    ];
    for (name, setup, id, verdict, words) in cases {
        let mut world = doctor_world().await;
        setup(&mut world);

        let report = doctor::run(&world.settings).await;

        let check = report
            .get(id)
            .unwrap_or_else(|| panic!("{name}: no `{id}` check in\n{report}"));
        assert_eq!(check.verdict, verdict, "{name}:\n{report}");
        let text = format!(
            "{} {}",
            check.found,
            check.advice.clone().unwrap_or_default()
        );
        assert!(text.contains(words), "{name}: `{words}` in `{text}`");
        if verdict == Verdict::Failed {
            assert!(check.advice.is_some(), "{name}: a failure says what to do");
            assert!(!report.passed(), "{name}");
        } else {
            assert!(
                report.passed(),
                "{name}: a warning is not a failure\n{report}"
            );
        }
        // Every other check that ran is fine: each problem shows on its own.
        for other in report.checks.iter().filter(|c| c.id != id) {
            assert!(
                matches!(other.verdict, Verdict::Ok | Verdict::Skipped),
                "{name}: `{}` should not be affected\n{report}",
                other.id
            );
        }
    }
}

#[tokio::test]
async fn parley_doctor_exits_zero_only_when_the_essentials_pass() {
    let world = doctor_world().await;
    let dir = tempfile::tempdir().unwrap();
    let env = |token: &str| {
        vec![
            ("PARLEY_MATTERMOST_URL", world.sim.url()),
            ("PARLEY_MATTERMOST_TOKEN", token.to_owned()),
            ("PARLEY_MATTERMOST_TEAM", "support".to_owned()),
            ("PARLEY_MATTERMOST_CHANNEL", "requests".to_owned()),
        ]
    };

    let good = run_binary(&["doctor"], &env(&world.bot.token), dir.path()).await;
    let bad = run_binary(&["doctor"], &env("wrong-token"), dir.path()).await;

    let out = String::from_utf8_lossy(&good.stdout);
    assert!(
        good.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(out.contains("All essential checks passed"), "{out}");
    let out = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{out}");
    assert!(
        out.contains("Access token") && out.contains("PARLEY_MATTERMOST_TOKEN"),
        "{out}"
    );
}
