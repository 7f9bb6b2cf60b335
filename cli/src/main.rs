// SPDX-License-Identifier: Apache-2.0
//! `jetjobs`, the operator CLI: everything is in the library ([`jetjobs_cli::run`]), which the
//! Python and npm packages' `jetjobs` commands call as well.

fn main() {
    jetjobs_cli::install_panic_hook();
    std::process::exit(jetjobs_cli::run(std::env::args_os().collect()));
}
