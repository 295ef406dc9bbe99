//! Command-line arguments more than one program takes, defined once so that the flag, its environment
//! variable and its default cannot drift apart between programs.

use std::path::PathBuf;

use crate::engine::Target;

/// `--db` (env `AEGIS_DB`): the transactions database.
#[derive(Debug, Clone, clap::Args)]
pub struct DbArg {
    /// The transactions database: an SQLite file (created with the schema if missing), or a
    /// PostgreSQL database as postgres://user:password@host:port/database.
    #[arg(long, env = "AEGIS_DB", default_value = crate::DEFAULT_DB, global = true,
          hide_env_values = true)]
    pub db: Target,
}

/// `--modeling` (env `AEGIS_MODELING`): the model artifacts directory.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelingArg {
    /// The model artifacts directory (model_config.json, weights, metrics.json).
    #[arg(long, env = "AEGIS_MODELING", default_value = crate::DEFAULT_MODELING, global = true)]
    pub modeling: PathBuf,
}

/// `--quiet`: no progress bar (for scripts, logs and the launcher).
#[derive(Debug, Clone, clap::Args)]
pub struct ProgressArg {
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl ProgressArg {
    /// Whether to draw a progress bar.
    pub fn show(&self) -> bool {
        !self.quiet
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Program {
        #[command(flatten)]
        db: DbArg,
        #[command(flatten)]
        modeling: ModelingArg,
    }

    #[test]
    fn flags_override_the_defaults() {
        let program = Program::parse_from(["p", "--db", "x.db", "--modeling", "m"]);
        assert_eq!(program.db.db, Target::Sqlite(PathBuf::from("x.db")));
        assert_eq!(program.modeling.modeling, PathBuf::from("m"));
    }
}
