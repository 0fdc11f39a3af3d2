// Cluster preemption: the first SIGTERM/SIGINT asks the trainer to finish its step, checkpoint and exit 0;
// a second one exits at once (code 128 + signal).
#pragma once

namespace supra::training {

void install_stop_handlers();  // idempotent
bool stop_requested();
int stop_signal();          // the signal that asked to stop (0 if none)
void reset_stop_request();  // tests

}  // namespace supra::training
