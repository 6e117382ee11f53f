//! Visitor text against a port of Mattermost's mention detection
//! (tests/support/mattermost_mentions.rs): the port first reproduces Mattermost's own test
//! cases, then no escaped text, from those cases or generated, mentions anyone.

#[path = "../../tests/support/mattermost_mentions.rs"]
mod mattermost;

use mattermost::{Keywords, Mentions, mentions, visible_text};
use proptest::prelude::*;

use super::markdown::escape_for_mattermost;

/// One case of Mattermost's `TestGetExplicitMentions` (app/notification_test.go at 5.37; the
/// same inputs in server/channels/app/notification_test.go today): the message, the
/// keywords, and what Mattermost expects (`@here`/`@channel`/`@all` and potential mentions).
struct Case {
    name: &'static str,
    message: &'static str,
    keywords: &'static [(&'static str, &'static [&'static str])],
    ids: &'static [&'static str],
    channel_wide: &'static str,
    potential: &'static [&'static str],
}

const fn case(
    name: &'static str,
    message: &'static str,
    keywords: &'static [(&'static str, &'static [&'static str])],
    ids: &'static [&'static str],
) -> Case {
    Case {
        name,
        message,
        keywords,
        ids,
        channel_wide: "",
        potential: &[],
    }
}

const U: &[&str] = &["id1"];
const U2: &[&str] = &["id2"];
const U3: &[&str] = &["id3"];
const BOTH: &[&str] = &["id1", "id2"];
const ABC: &[(&str, &[&str])] = &[("@aaa", U), ("@bbb", U2), ("@ccc", U3)];
const SMILE: &[(&str, &[&str])] = &[("smile", U), ("smiley", U2), ("smiley_cat", U3)];

const EXPLICIT_MENTIONS: &[Case] = &[
    case("Nobody", "this is a message", &[], &[]),
    Case {
        potential: &["user"],
        ..case("NonexistentUser", "this is a message for @user", &[], &[])
    },
    case(
        "OnePerson",
        "this is a message for @user",
        &[("@user", U)],
        U,
    ),
    case(
        "OnePersonWithPeriodAtEndOfUsername",
        "this is a message for @user.name.",
        &[("@user.name.", U)],
        U,
    ),
    case(
        "OnePersonWithPeriodAtEndOfUsernameButNotSimilarName",
        "this is a message for @user.name.",
        &[("@user.name.", U), ("@user.name", U2)],
        U,
    ),
    case(
        "OnePersonAtEndOfSentence",
        "this is a message for @user.",
        &[("@user", U)],
        U,
    ),
    Case {
        potential: &["user"],
        ..case(
            "OnePersonWithoutAtMention",
            "this is a message for @user",
            &[("this", U)],
            U,
        )
    },
    case(
        "OnePersonWithPeriodBefore",
        "this is a message for .@user",
        &[("@user", U)],
        U,
    ),
    case(
        "OnePersonWithColonAfter",
        "this is a message for @user:",
        &[("@user", U)],
        U,
    ),
    case(
        "OnePersonWithColonBefore",
        "this is a message for :@user",
        &[("@user", U)],
        U,
    ),
    case(
        "OnePersonWithHyphenBefore",
        "this is a message for -@user",
        &[("@user", U)],
        U,
    ),
    case(
        "MultiplePeopleWithOneWord",
        "this is a message for @user",
        &[("@user", BOTH)],
        BOTH,
    ),
    case(
        "OneOfMultiplePeople",
        "this is a message for @user",
        &[("@user", U), ("@mention", U2)],
        U,
    ),
    case(
        "MultiplePeopleWithMultipleWords",
        "this is an @mention for @user",
        &[("@user", U), ("@mention", U2)],
        BOTH,
    ),
    Case {
        channel_wide: "channel",
        ..case(
            "Channel",
            "this is an message for @channel",
            &[("@channel", BOTH)],
            BOTH,
        )
    },
    Case {
        channel_wide: "channel",
        ..case(
            "ChannelWithColonAtEnd",
            "this is a message for @channel:",
            &[("@channel", BOTH)],
            BOTH,
        )
    },
    Case {
        channel_wide: "channel",
        ..case(
            "CapitalizedChannel",
            "this is an message for @cHaNNeL",
            &[("@channel", BOTH)],
            BOTH,
        )
    },
    Case {
        channel_wide: "all",
        ..case(
            "All",
            "this is an message for @all",
            &[("@all", BOTH)],
            BOTH,
        )
    },
    Case {
        channel_wide: "all",
        ..case(
            "AllWithColonAtEnd",
            "this is a message for @all:",
            &[("@all", BOTH)],
            BOTH,
        )
    },
    Case {
        channel_wide: "all",
        ..case(
            "CapitalizedAll",
            "this is an message for @ALL",
            &[("@all", BOTH)],
            BOTH,
        )
    },
    case(
        "UserWithPeriod",
        "user.period doesn't complicate things at all by including periods in their username",
        &[("user.period", U), ("user", U2)],
        U,
    ),
    case(
        "AtUserWithPeriodAtEndOfSentence",
        "this is a message for @user.period.",
        &[("@user.period", U)],
        U,
    ),
    case(
        "UserWithPeriodAtEndOfSentence",
        "this is a message for user.period.",
        &[("user.period", U)],
        U,
    ),
    case(
        "UserWithColonAtEnd",
        "this is a message for user:",
        &[("user", U)],
        U,
    ),
    Case {
        potential: &["potential"],
        ..case(
            "PotentialOutOfChannelUser",
            "this is an message for @potential and @user",
            &[("@user", U)],
            U,
        )
    },
    Case {
        potential: &["potential.user"],
        ..case(
            "PotentialOutOfChannelUserWithPeriod",
            "this is an message for @potential.user",
            &[],
            &[],
        )
    },
    case(
        "InlineCode",
        "`this shouldn't mention @channel at all`",
        &[],
        &[],
    ),
    case(
        "FencedCodeBlock",
        "```\nthis shouldn't mention @channel at all\n```",
        &[],
        &[],
    ),
    case("Emphasis", "*@aaa @bbb @ccc*", ABC, &["id1", "id2", "id3"]),
    case(
        "StrongEmphasis",
        "**@aaa @bbb @ccc**",
        ABC,
        &["id1", "id2", "id3"],
    ),
    case(
        "Strikethrough",
        "~~@aaa @bbb @ccc~~",
        ABC,
        &["id1", "id2", "id3"],
    ),
    case("Heading", "### @aaa", ABC, U),
    case("BlockQuote", "> @aaa", ABC, U),
    case("Emoji", ":smile:", SMILE, &[]),
    case("NotEmoji", "smile", SMILE, U),
    case("UnclosedEmoji", ":smile", SMILE, U),
    case("UnopenedEmoji", "smile:", SMILE, U),
    case(
        "IndentedCodeBlock",
        "    this shouldn't mention @channel at all",
        &[],
        &[],
    ),
    case(
        "LinkTitle",
        "[foo](this \"shouldn't mention @channel at all\")",
        &[],
        &[],
    ),
    Case {
        channel_wide: "channel",
        ..case(
            "MalformedInlineCode",
            "`this should mention @channel``",
            &[],
            &[],
        )
    },
    case("MultibyteCharacter", "My name is 萌", &[("萌", U)], U),
    case(
        "MultibyteCharacterAtBeginningOfSentence",
        "이메일을 보내다.",
        &[("이메일", U)],
        U,
    ),
    case(
        "MultibyteCharacterInPartOfSentence",
        "我爱吃番茄炒饭",
        &[("番茄", U)],
        U,
    ),
    case(
        "MultibyteCharacterAtEndOfSentence",
        "こんにちは、世界",
        &[("世界", U)],
        U,
    ),
    case(
        "MultibyteCharacterTwiceInSentence",
        "石橋さんが石橋を渡る",
        &[("石橋", U)],
        U,
    ),
    case(
        "Don't include potential mention that's part of an actual mention (without trailing period)",
        "this is an message for @user.name",
        &[("@user.name", U)],
        U,
    ),
    case(
        "Don't include potential mention that's part of an actual mention (with trailing period)",
        "this is an message for @user.name.",
        &[("@user.name", U)],
        U,
    ),
    case(
        "Don't include potential mention that's part of an actual mention (with multiple trailing periods)",
        "this is an message for @user.name...",
        &[("@user.name", U)],
        U,
    ),
    case(
        "Don't include potential mention that's part of an actual mention (containing and followed by multiple periods)",
        "this is an message for @user...name...",
        &[("@user...name", U)],
        U,
    ),
    Case {
        potential: &["other", "test-two"],
        ..case(
            "Name on keywords is a prefix of a mention",
            "@other @test-two",
            &[("@test", U)],
            &[],
        )
    },
    Case {
        potential: &["other-one", "other", "other-two"],
        ..case(
            "Name on mentions is a prefix of other mention",
            "@other-one @other @other-two",
            &[],
            &[],
        )
    },
    Case {
        potential: &["nothing"],
        ..case("No groups", "@nothing", &[], &[])
    },
];

/// The cases of `TestProcessText` and `TestCheckForMentionUsers` in the newest Mattermost
/// (server/channels/app/mention_parser_standard_test.go); the group is a keyword like a user.
const NEWEST: &[Case] = &[
    case(
        "Mention user in text",
        "hello user @user1",
        &[("@user1", U)],
        U,
    ),
    case(
        "Mention user after ending a sentence with full stop",
        "hello user.@user1",
        &[("@user1", U)],
        U,
    ),
    case(
        "Mention user after hyphen",
        "hello user-@user1",
        &[("@user1", U)],
        U,
    ),
    case(
        "Mention user after colon",
        "hello user:@user1",
        &[("@user1", U)],
        U,
    ),
    Case {
        channel_wide: "here",
        ..case("Mention here after colon", "hello all:@here", &[], &[])
    },
    Case {
        channel_wide: "all",
        ..case("Mention all after hyphen", "hello all-@all", &[], &[])
    },
    Case {
        channel_wide: "channel",
        ..case(
            "Mention channel after full stop",
            "hello channel.@channel",
            &[],
            &[],
        )
    },
    Case {
        potential: &["potentialuser", "otherpotentialuser"],
        ..case(
            "Mention other potential users or system calls",
            "hello @potentialuser and @otherpotentialuser",
            &[],
            &[],
        )
    },
    Case {
        potential: &["systembot"],
        ..case(
            "Mention a real user and another potential user and a group",
            "@engineering @user1, you can use @systembot to get help from",
            &[("@user1", U), ("@engineering", U2)],
            BOTH,
        )
    },
    // Run through ProcessText, which also lists `@HeRe` and `@ALL` as potential names: its
    // check for the channel-wide words is case-sensitive, `checkForMention`'s is not.
    case("UppercaseUser1", "@User", &[("@user", U)], U),
    case("UppercaseUser2", "@UsEr2", &[("@user2", U2)], U2),
    Case {
        channel_wide: "here",
        potential: &["HeRe"],
        ..case("UppercaseHere", "@HeRe", &[], &[])
    },
    Case {
        channel_wide: "all",
        potential: &["ALL"],
        ..case("UppercaseAll", "@ALL", &[], &[])
    },
];

/// `TestGetExplicitMentionsAtHere`'s boundary cases: does the message mention `@here`?
const AT_HERE: &[(&str, bool)] = &[
    ("", false),
    ("here", false),
    ("@here", true),
    (" @here ", true),
    ("\n@here\n", true),
    ("!@here!", true),
    ("#@here#", true),
    ("$@here$", true),
    ("%@here%", true),
    ("^@here^", true),
    ("&@here&", true),
    ("*@here*", true),
    ("(@here(", true),
    (")@here)", true),
    ("-@here-", true),
    ("_@here_", true),
    ("=@here=", true),
    ("+@here+", true),
    ("[@here[", true),
    ("{@here{", true),
    ("]@here]", true),
    ("}@here}", true),
    ("\\@here\\", true),
    ("|@here|", true),
    (";@here;", true),
    ("@here:", true),
    (":@here:", false),
    ("'@here'", true),
    ("\"@here\"", true),
    (",@here,", true),
    ("<@here<", true),
    (".@here.", true),
    (">@here>", true),
    ("/@here/", true),
    ("?@here?", true),
    ("`@here`", false),
    ("~@here~", true),
    ("@HERE", true),
    ("@hERe", true),
];

/// What issue 12 saw mention people on a real Mattermost 5.37 through the escaping of 8557767,
/// and the neighbours of each: the whole class, not only the examples.
const SEEN_ON_5_37: &[&str] = &[
    "x.@channel",
    "_@here",
    "@@all",
    "x-@alice",
    "&commat;channel",
    ":@alice",
    "&#64;channel",
    "&#x40;here",
    "&#X40;all",
    "&#0000064;alice",
    "\\@channel",
    "x\\@alice",
    "a.b-c_@alice",
    "__@here",
    "::@all",
    "x:@alice:",
    "@\u{200B}@all",
    "(@here)",
    "**@alice**",
    "<@alice>",
    "@alice.",
    "erika@example.com",
    "erika.@example.com",
    "erika-@example.com",
    "erika_@example.com",
    "@\u{212A}ate", // KELVIN SIGN lower-cases to an ASCII k
];

fn expected(case: &Case) -> Mentions {
    Mentions {
        ids: case.ids.iter().map(|s| (*s).to_owned()).collect(),
        here: case.channel_wide == "here",
        channel: case.channel_wide == "channel",
        all: case.channel_wide == "all",
        other_potential: case.potential.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// Fails with the input, its escaped form and what the port found.
fn assert_mentions_nobody(input: &str) {
    let escaped = escape_for_mattermost(input);
    let found = mentions(&escaped, &Keywords::Anyone);
    assert!(
        !found.anything(),
        "{input:?} escaped to {escaped:?} still mentions: {found:?}"
    );
}

#[test]
fn the_port_finds_what_mattermost_s_own_tests_expect() {
    for case in EXPLICIT_MENTIONS.iter().chain(NEWEST) {
        let keywords = Keywords::exactly(case.keywords);
        assert_eq!(
            mentions(case.message, &keywords),
            expected(case),
            "{}: {:?}",
            case.name,
            case.message
        );
    }
    for (message, here) in AT_HERE {
        let found = mentions(message, &Keywords::Exactly(Default::default()));
        assert_eq!(found.here, *here, "{message:?}");
    }
    // And what a real 5.37 server counted through the escaping of 8557767 (mattermost-api.md
    // §13), with that escaping's output as the input.
    for mention in [
        "x.@channel",
        "\\_@here",
        "@\u{200B}@all",
        "x-@alice",
        "&commat;channel",
        ":@alice",
    ] {
        assert!(
            mentions(mention, &Keywords::Anyone).any(),
            "{mention:?} mentioned someone on 5.37"
        );
    }
    for quiet in [
        "@\u{200B}alice",
        "(@\u{200B}all)",
        "\\*\\*@\u{200B}alice\\*\\*",
        "\\<@\u{200B}alice\\>",
    ] {
        assert!(
            !mentions(quiet, &Keywords::Anyone).any(),
            "{quiet:?} mentioned nobody on 5.37"
        );
    }
}

#[test]
fn escaped_test_inputs_of_mattermost_mention_nobody() {
    let inputs = EXPLICIT_MENTIONS
        .iter()
        .chain(NEWEST)
        .map(|c| c.message)
        .chain(AT_HERE.iter().map(|(m, _)| *m))
        .chain(SEEN_ON_5_37.iter().copied());
    for input in inputs {
        assert_mentions_nobody(input);
        // Also as a name or a field: inside the templates' Markdown.
        assert_mentions_nobody(&format!("**{input}**"));
    }
}

#[test]
fn e_mail_addresses_stay_copyable_and_inert() {
    for address in ["erika@example.com", "a.b+c@shop.example.org", "x1@y2.z"] {
        assert_eq!(
            escape_for_mattermost(address).replace('\\', ""),
            address,
            "{address}"
        );
        assert!(!escape_for_mattermost(address).contains('\u{200B}'));
        assert_mentions_nobody(address);
    }
    // An `@` after anything but an ASCII letter or digit can start a word: it is cut.
    for tricky in ["erika.@alice", "erika-@alice", "erika_@alice", "é@alice"] {
        assert!(
            escape_for_mattermost(tricky).contains("@\u{200B}"),
            "{tricky}"
        );
    }
}

/// Pieces that make Mattermost's parser and word splitting do something: every character
/// that joins or splits words, escapes and references, Markdown syntax, look-alikes of `@`
/// and of letters, invisible characters, names.
const HOSTILE: &[&str] = &[
    "@",
    "@",
    "@",
    "channel",
    "here",
    "all",
    "alice",
    "bob.smith",
    "x",
    "1",
    "é",
    "萌",
    ".",
    "-",
    "_",
    ":",
    ":smile:",
    "&",
    "&commat;",
    "&#64;",
    "&#x40;",
    "&#X0040;",
    "&amp;",
    "&nbsp;",
    "commat;",
    "#64;",
    ";",
    "\\",
    "\\\\",
    "`",
    "```",
    "*",
    "**",
    "~",
    "~~",
    "[",
    "]",
    "(",
    ")",
    "](",
    "![",
    "<",
    ">",
    "|",
    "#",
    "!",
    "$",
    "=",
    "+",
    " ",
    "  ",
    "    ",
    "\t",
    "\n",
    "\n\n",
    "\r",
    "\r\n",
    "> ",
    "- ",
    "1. ",
    "www.",
    "http://",
    "mailto:",
    "＠",
    "﹫",
    "\u{200B}",
    "\u{200D}",
    "\u{FEFF}",
    "\u{0301}",
    "\u{0345}",
    "\u{212A}",
    "\u{130}",
    "ＡＬＬ",
    "\u{202E}",
];

fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(prop::sample::select(HOSTILE), 0..40).prop_map(|p| p.concat()),
        1 => any::<String>(),
    ]
}

/// Whitespace-separated words, zero-width spaces and bidirectional controls taken out (the
/// escaper drops those): what a reader sees, in the order written.
fn words(text: &str) -> Vec<String> {
    text.replace('\u{200B}', "")
        .replace(crate::domain::files::is_bidi_control, "")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn escaped_hostile_text_mentions_nobody_and_reads_as_written(input in hostile_text()) {
        let escaped = escape_for_mattermost(&input);
        let found = mentions(&escaped, &Keywords::Anyone);
        prop_assert!(!found.anything(), "{:?} escaped to {:?} mentions {:?}", input, escaped, found);
        // Everything written is shown, as written: no syntax took effect.
        prop_assert_eq!(words(&visible_text(&escaped)), words(&input), "escaped: {:?}", escaped);
        // In any template too: after text, in bold, on a line of its own.
        for wrapped in [format!("From {escaped}"), format!("**{escaped}**"), format!("x\n{escaped}\ny")] {
            let found = mentions(&wrapped, &Keywords::Anyone);
            prop_assert!(!found.anything(), "{:?} mentions {:?}", wrapped, found);
        }
    }
}

#[test]
fn bidirectional_controls_cannot_reorder_what_an_operator_reads() {
    for control in [
        '\u{200E}', '\u{200F}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}',
        '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
    ] {
        let escaped = escape_for_mattermost(&format!("pay {control}001 ot{control} now"));
        assert_eq!(escaped, "pay 001 ot now", "{control:?}");
    }
    // Right-to-left text itself is kept as written.
    assert_eq!(escape_for_mattermost("שלום عليكم"), "שלום عليكم");
}

#[test]
fn a_carriage_return_ends_a_line_like_a_line_feed() {
    // Found by the property test: leading spaces after a lone CR made a code block.
    for input in ["@\r\r    @", "a\r\n\r\n    @b", "x\r    - y"] {
        let escaped = escape_for_mattermost(input);
        assert!(!escaped.contains('\r'), "{escaped:?}");
        assert!(!escaped.contains("\n    "), "{escaped:?}");
        assert_eq!(
            words(&visible_text(&escaped)),
            words(input),
            "escaped: {escaped:?}"
        );
    }
}
