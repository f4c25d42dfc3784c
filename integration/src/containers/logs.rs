//! Container logs with the engine's own timestamps ([`logs_with_times`]), which put the
//! stand-in containers' mode changes on one clock, and [`log_tail`] for failure messages.

use super::DOCKER_CALL_TIMEOUT;
use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use testcontainers::bollard::Docker;
use testcontainers::bollard::query_parameters::LogsOptions;

/// One line of a container's log with the time the engine received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub at: SystemTime,
    pub text: String,
}

/// Everything `container` printed so far (stdout and stderr), with the engine's timestamps.
pub async fn logs_with_times(docker: &Docker, container: &str) -> Result<Vec<LogLine>> {
    let mut stream = docker.logs(
        container,
        Some(LogsOptions {
            stdout: true,
            stderr: true,
            timestamps: true,
            follow: false,
            tail: "all".to_owned(),
            ..Default::default()
        }),
    );
    let collect = async {
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk?.into_bytes()));
        }
        Ok::<_, anyhow::Error>(text)
    };
    let text = match tokio::time::timeout(DOCKER_CALL_TIMEOUT, collect).await {
        Ok(text) => text.with_context(|| format!("reading the log of {container}"))?,
        Err(_) => bail!("the log of {container} did not arrive within {DOCKER_CALL_TIMEOUT:?}"),
    };
    Ok(text
        .lines()
        .filter_map(|line| {
            let (stamp, rest) = line.split_once(' ')?;
            Some(LogLine {
                at: parse_rfc3339_utc(stamp)?,
                text: rest.trim_end_matches('\r').to_owned(),
            })
        })
        .collect())
}

/// The last `lines` lines of a container's log, for failure messages; never fails.
pub async fn log_tail(docker: &Docker, container: &str, lines: usize) -> String {
    match logs_with_times(docker, container).await {
        Ok(all) => all[all.len().saturating_sub(lines)..]
            .iter()
            .map(|line| line.text.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        Err(error) => format!("(no log: {error:#})"),
    }
}

/// Parses the engine's log timestamps: RFC 3339 in UTC, `2026-11-26T07:30:00.123456789Z`.
pub fn parse_rfc3339_utc(stamp: &str) -> Option<SystemTime> {
    let stamp = stamp.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut date = date.splitn(3, '-').map(str::parse::<i64>);
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let (clock, fraction) = match time.split_once('.') {
        Some((clock, fraction)) => (clock, fraction),
        None => (time, ""),
    };
    let mut clock = clock.splitn(3, ':').map(str::parse::<i64>);
    let (hour, minute, second) = (
        clock.next()?.ok()?,
        clock.next()?.ok()?,
        clock.next()?.ok()?,
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let nanos: u32 = if fraction.is_empty() {
        0
    } else {
        let digits: String = fraction.chars().take(9).collect();
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        format!("{digits:0<9}").parse().ok()?
    };
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * m + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    let seconds = u64::try_from(seconds).ok()?;
    Some(UNIX_EPOCH + Duration::new(seconds, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_timestamps_parse() {
        let at = parse_rfc3339_utc("2026-11-26T07:30:01.123456789Z").unwrap();
        let since = at.duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(since.as_secs(), 1_795_678_201);
        assert_eq!(since.subsec_nanos(), 123_456_789);
        let short = parse_rfc3339_utc("1970-01-02T00:00:00.5Z").unwrap();
        assert_eq!(
            short.duration_since(UNIX_EPOCH).unwrap(),
            Duration::from_millis(86_400_500)
        );
        assert_eq!(
            parse_rfc3339_utc("2000-03-01T00:00:00Z")
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            951_868_800
        );
        assert!(parse_rfc3339_utc("2026-11-26 07:30:01Z").is_none());
        assert!(parse_rfc3339_utc("2026-13-26T07:30:01Z").is_none());
    }
}
