//! The Python library's `usermgr` command names, at the top level and with its arguments, each
//! running the equivalent `pgusers user …`/`pgusers sessions …` command: `adduser`, `setadmin`,
//! `cpasswd`, `delete`, `list`, `info`, `listsessions`, `killsessions`. (`usermgr`'s database
//! options and USERSPACE argument are the configuration here: `PGUSERS_*`, `--config`, `--set`.)

use clap::{ArgGroup, Subcommand};

use super::sessions::SessionsCommand;
use super::users::UserCommand;
use super::{Job, OutputArgs};

#[derive(Subcommand, Debug)]
pub enum UsermgrCommand {
    /// usermgr's adduser: `user add`, with the username defaulting to the email.
    Adduser {
        /// Make the user an administrator.
        #[arg(short, long)]
        admin: bool,
        email: String,
        /// The username, if different from the email.
        username: Option<String>,
        /// Data attached to the user (a JSON value).
        #[arg(long, value_name = "JSON")]
        extra_data: Option<String>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// usermgr's setadmin: `user admin [--remove] USER`.
    Setadmin {
        /// Demote an administrator to a regular user.
        #[arg(short, long)]
        remove: bool,
        /// Username, email, or #USERID.
        #[arg(value_name = "USER")]
        user: String,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// usermgr's cpasswd: `user passwd USER`.
    Cpasswd {
        /// Username, email, or #USERID.
        #[arg(value_name = "USER")]
        user: String,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// usermgr's delete: `user delete USER [--yes]`.
    Delete {
        /// Username, email, or #USERID.
        #[arg(value_name = "USER")]
        user: String,
        /// Do not ask; required when standard input is not a terminal.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// usermgr's list: `user list`.
    List {
        #[command(flatten)]
        out: OutputArgs,
    },
    /// usermgr's info: `user info USER`.
    Info {
        /// Username, email, or #USERID.
        #[arg(value_name = "USER")]
        user: String,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// usermgr's listsessions: `sessions list [--expired] (USER | --all)`.
    #[command(group(ArgGroup::new("whose").required(true).args(["user", "all"])))]
    Listsessions {
        /// The sessions of every user.
        #[arg(short, long)]
        all: bool,
        /// Only sessions that have expired.
        #[arg(short = 'x', long)]
        expired: bool,
        /// Username, email, or #USERID.
        #[arg(value_name = "USER")]
        user: Option<String>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// usermgr's killsessions: `sessions kill [--expired] (USER | --all)`.
    #[command(group(ArgGroup::new("whose").required(true).args(["user", "all"])))]
    Killsessions {
        /// The sessions of every user.
        #[arg(short, long)]
        all: bool,
        /// Only sessions that have expired.
        #[arg(short = 'x', long)]
        expired: bool,
        /// Username, email, or #USERID.
        #[arg(value_name = "USER")]
        user: Option<String>,
        #[command(flatten)]
        out: OutputArgs,
    },
}

impl UsermgrCommand {
    /// The equivalent `user …` or `sessions …` command.
    pub(super) fn into_job(self) -> (Job, OutputArgs) {
        match self {
            Self::Adduser {
                admin,
                email,
                username,
                extra_data,
                out,
            } => {
                let username = username.unwrap_or_else(|| email.clone());
                let cmd = UserCommand::Add {
                    username,
                    email,
                    admin,
                    extra_data,
                };
                (Job::User(cmd), out)
            }
            Self::Setadmin { remove, user, out } => {
                (Job::User(UserCommand::Admin { user, remove }), out)
            }
            Self::Cpasswd { user, out } => (Job::User(UserCommand::Passwd { user }), out),
            Self::Delete { user, yes, out } => (Job::User(UserCommand::Delete { user, yes }), out),
            Self::List { out } => (Job::User(UserCommand::List), out),
            Self::Info { user, out } => (Job::User(UserCommand::Info { user }), out),
            Self::Listsessions {
                all,
                expired,
                user,
                out,
            } => {
                let cmd = SessionsCommand::List { expired, user, all };
                (Job::Sessions(cmd), out)
            }
            Self::Killsessions {
                all,
                expired,
                user,
                out,
            } => {
                let cmd = SessionsCommand::Kill { expired, user, all };
                (Job::Sessions(cmd), out)
            }
        }
    }
}
