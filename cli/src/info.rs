// SPDX-License-Identifier: Apache-2.0
//! `jetjobs info`: an overview of the account's asyncjobs storage, as `ajc info` gives.

use crate::connect::ConnectArgs;
use crate::exit::CliError;
use crate::output::{self, Output};
use crate::queue::show_queue;
use crate::schema::{InfoJson, QueueJson, TasksStoreJson};

pub(crate) async fn run(connect: &ConnectArgs, out: &Output) -> Result<(), CliError> {
    let client = connect.connect().await?;
    let admin = client.admin();
    let tasks = admin.tasks_info().await?;
    let mut queues = Vec::new();
    for name in admin.queue_names().await? {
        queues.push(QueueJson::from(&admin.queue_info(&name).await?));
    }
    let info = InfoJson {
        tasks: TasksStoreJson {
            stored: tasks.tasks,
            bytes: tasks.bytes,
            memory: tasks.memory,
            replicas: tasks.replicas,
        },
        scheduler_leader: jetjobs::TaskScheduler::leader(&client).await?,
        schedules: client.schedules().await?.len(),
        queues,
    };
    out.show(&info, |info| {
        println!("Tasks Storage:\n");
        println!("         Entries: {}", info.tasks.stored);
        println!("            Size: {}", output::bytes(info.tasks.bytes));
        println!("    Memory Based: {}", info.tasks.memory);
        println!("        Replicas: {}", info.tasks.replicas);
        println!();
        println!("Task Scheduler:\n");
        println!(
            "          Leader: {}",
            info.scheduler_leader.as_deref().unwrap_or("none")
        );
        println!("       Schedules: {}", info.schedules);
        for queue in &info.queues {
            println!();
            show_queue(queue);
        }
    })
}
