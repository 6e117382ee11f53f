//! Departments as parley uses them: where a chat's request goes (a [`Route`]), the widget's
//! texts, and the templates of parley's posts. Reading and validating them is in
//! `app::departments`.

use jiff::tz::TimeZone;
use serde::Serialize;

use super::{hours::OnlineHours, template::Target};

/// Longest department name.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest widget text (title, greeting, offline text).
pub const MAX_TEXT_CHARS: usize = 500;

/// The four templates, each with its default (the look parley has without a department) and
/// its limit when saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateKind {
    Request,
    ChannelDisplayName,
    ChannelHeader,
    FirstPost,
}

impl TemplateKind {
    pub const ALL: [TemplateKind; 4] = [
        Self::Request,
        Self::ChannelDisplayName,
        Self::ChannelHeader,
        Self::FirstPost,
    ];

    /// The default: today's texts. The first post is empty by default (nothing is posted;
    /// the header carries the visitor's details and the conversation follows).
    pub fn default_template(self) -> &'static str {
        match self {
            Self::Request => "**New chat request** from {nick}",
            Self::ChannelDisplayName => "Chat: {nick}",
            Self::ChannelHeader => {
                "**{nick}**{#email} · {email}{/email}{#page_url} · page: {page_url}{/page_url} · type `!close` to end the chat"
            }
            Self::FirstPost => "",
        }
    }

    /// Longest template accepted when saved.
    pub fn max_chars(self) -> usize {
        match self {
            Self::Request => 2000,
            Self::ChannelDisplayName => 200,
            Self::ChannelHeader => 1024,
            Self::FirstPost => 4000,
        }
    }

    pub fn target(self) -> Target {
        match self {
            Self::ChannelDisplayName => Target::Plain,
            _ => Target::Markdown,
        }
    }

    /// How the CLI and errors name it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Request => "request template",
            Self::ChannelDisplayName => "channel display name template",
            Self::ChannelHeader => "channel header template",
            Self::FirstPost => "first post template",
        }
    }
}

/// A department as parley uses it.
#[derive(Debug, Clone)]
pub struct Department {
    pub id: i64,
    pub name: String,
    pub team: String,
    pub channel: String,
    pub hours: Option<OnlineHours>,
    pub zone: TimeZone,
    pub texts: Texts,
    pub templates: [Option<String>; 4],
}

/// What the widget shows for a department; `None` = the widget's own (translated) text.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Texts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub greeting: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline: Option<String>,
}

impl Department {
    /// The template of `kind`: the department's own, or the default.
    pub fn template(&self, kind: TemplateKind) -> &str {
        let i = TemplateKind::ALL
            .iter()
            .position(|k| *k == kind)
            .expect("every kind is listed");
        self.templates[i]
            .as_deref()
            .unwrap_or(kind.default_template())
    }

    pub fn route(&self) -> Route {
        Route {
            team: self.team.clone(),
            channel: self.channel.clone(),
        }
    }
}

/// Where a department's requests go: team and requests channel names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Route {
    pub team: String,
    pub channel: String,
}

/// The template of `kind` for a chat of `department` (`None` = the default department).
pub fn template_for(department: Option<&Department>, kind: TemplateKind) -> &str {
    department.map_or(kind.default_template(), |d| d.template(kind))
}
