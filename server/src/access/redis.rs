//! Control commands over Redis pub/sub, as the Go RTMP server takes them:
//! `kill-session>CHANNEL` and `close-stream>CHANNEL|STREAM_ID`, one per
//! message. Redis is never needed for RTMP: the subscriber runs in a task
//! of its own, and whenever Redis is down or goes away it reconnects and
//! subscribes again with a short backoff (at most 2 s between tries).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::args::RedisArgs;
use super::Access;

/// First and longest wait between connection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How long one connection attempt may take (an unreachable host).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A command and its arguments.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    KillSession {
        channel: &'a str,
    },
    CloseStream {
        channel: &'a str,
        stream_id: &'a str,
    },
}

/// Parses `COMMAND>ARG_1|ARG_2|...`.
pub fn parse(message: &str) -> Result<Command<'_>, String> {
    let (command, args) = message
        .trim()
        .split_once('>')
        .ok_or_else(|| "expected COMMAND>ARGUMENTS".to_owned())?;
    let args: Vec<&str> = args.split('|').collect();
    match (command, args.as_slice()) {
        ("kill-session", [channel]) if !channel.is_empty() => Ok(Command::KillSession { channel }),
        ("close-stream", [channel, stream_id]) if !channel.is_empty() => {
            Ok(Command::CloseStream { channel, stream_id })
        }
        ("kill-session" | "close-stream", _) => Err(format!("wrong arguments for {command}")),
        _ => Err(format!("unknown command {command:?}")),
    }
}

/// Starts the subscriber on the current runtime; it runs until the
/// process exits.
pub fn spawn(access: Arc<Access>, args: RedisArgs) {
    tokio::spawn(async move {
        let info = redis::ConnectionInfo {
            addr: redis::ConnectionAddr::Tcp(args.host.clone(), args.port),
            redis: redis::RedisConnectionInfo {
                password: args.password.clone(),
                ..Default::default()
            },
        };
        let channel = args.channel.clone().unwrap_or_default();
        let client = match redis::Client::open(info) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "Redis settings unusable: no control commands");
                return;
            }
        };
        let mut backoff = BACKOFF_MIN;
        let mut was_down = false;
        loop {
            match subscribe(&client, &channel).await {
                Ok(mut pubsub) => {
                    tracing::info!(host = %args.host, port = args.port, %channel, "subscribed to Redis for control commands");
                    backoff = BACKOFF_MIN;
                    was_down = false;
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        match msg.get_payload::<String>() {
                            Ok(text) => execute(&access, &text),
                            Err(e) => tracing::warn!(error = %e, "Redis message is not text"),
                        }
                    }
                    tracing::warn!("Redis subscription lost: reconnecting");
                }
                Err(e) => {
                    // One warning per outage, then quiet retries.
                    if !was_down {
                        tracing::warn!(error = %e, host = %args.host, port = args.port,
                            "Redis unavailable: RTMP goes on, retrying");
                        was_down = true;
                    } else {
                        tracing::debug!(error = %e, "Redis still unavailable");
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    });
}

async fn subscribe(client: &redis::Client, channel: &str) -> Result<redis::aio::PubSub, String> {
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
    }
}

fn execute(access: &Access, text: &str) {
    match parse(text) {
        Ok(Command::KillSession { channel }) => {
            let n = access.kill_session(channel);
            tracing::info!(channel, ended = n, "kill-session");
        }
        Ok(Command::CloseStream { channel, stream_id }) => {
            let n = access.close_stream(channel, stream_id);
            tracing::info!(channel, stream_id, ended = n, "close-stream");
        }
        Err(e) => tracing::warn!(error = %e, "Redis control command ignored"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_as_the_go_server_takes_them() {
        assert_eq!(
            parse("kill-session>cam1"),
            Ok(Command::KillSession { channel: "cam1" })
        );
        assert_eq!(
            parse("close-stream>cam1|s-42\n"),
            Ok(Command::CloseStream {
                channel: "cam1",
                stream_id: "s-42"
            })
        );
        assert!(parse("kill-session>").is_err());
        assert!(parse("kill-session>a|b").is_err());
        assert!(parse("close-stream>a").is_err());
        assert!(parse("reboot>now").is_err());
        assert!(parse("nothing").is_err());
    }
}
