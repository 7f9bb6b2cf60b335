// SPDX-License-Identifier: Apache-2.0
//! `jetjobs pool`: a read-only look at a keyed job pool (its nodes, workers and jobs), through
//! `jetjobs::inspect_pool`, without joining it.

use clap::Subcommand;

use crate::connect::ConnectArgs;
use crate::exit::CliError;
use crate::output::{self, Output, Table};
use crate::schema::{PoolJobJson, PoolMemberJson};

#[derive(Debug, Subcommand)]
pub(crate) enum PoolCommand {
    /// The pool's live nodes, oldest first
    Nodes {
        /// The pool
        pool: String,
    },
    /// The pool's live workers, oldest first
    Workers {
        /// The pool
        pool: String,
    },
    /// The pool's jobs, by key
    Jobs {
        /// The pool
        pool: String,
    },
}

impl PoolCommand {
    pub(crate) async fn run(self, connect: &ConnectArgs, out: &Output) -> Result<(), CliError> {
        let client = connect.connect().await?;
        match self {
            PoolCommand::Nodes { pool } => {
                let snapshot = jetjobs::inspect_pool(&client, &pool).await?;
                members(out, &snapshot.nodes)
            }
            PoolCommand::Workers { pool } => {
                let snapshot = jetjobs::inspect_pool(&client, &pool).await?;
                members(out, &snapshot.workers)
            }
            PoolCommand::Jobs { pool } => {
                let snapshot = jetjobs::inspect_pool(&client, &pool).await?;
                let jobs: Vec<PoolJobJson> = snapshot.jobs.iter().map(PoolJobJson::from).collect();
                out.show(&jobs, |jobs| {
                    if jobs.is_empty() {
                        println!("No jobs");
                        return;
                    }
                    let mut table = Table::new(&["KEY", "STATE", "OWNER", "GENERATION", "PAYLOAD"]);
                    for j in jobs {
                        table.row(vec![
                            j.key.clone(),
                            j.state.clone(),
                            j.owner.clone(),
                            j.generation.to_string(),
                            output::bytes(j.payload_bytes as u64),
                        ]);
                    }
                    table.print();
                })
            }
        }
    }
}

fn members(out: &Output, members: &[jetjobs::PoolMember]) -> Result<(), CliError> {
    let json: Vec<PoolMemberJson> = members.iter().map(PoolMemberJson::from).collect();
    out.show(&json, |_| {
        if members.is_empty() {
            println!("None");
            return;
        }
        let mut table = Table::new(&["ID", "NODE", "JOINED"]);
        for m in members {
            table.row(vec![
                m.id.clone(),
                m.node.clone(),
                output::time(&m.created_at),
            ]);
        }
        table.print();
    })
}
