// Ctrl-C / SIGTERM handling for long-running commands: the first signal asks
// the work loop to stop at the next safe point (it then saves its state); a
// second one exits at once, SIGKILLing the child processes first so no peer of
// `murmur swarm` or `murmur netem run` is left behind.
#pragma once

#include <sys/types.h>

namespace murmur::run {

void install_interrupt_handler();
bool interrupted();

// Children (each the leader of its own process group) that an abort kills; launch::Process does this.
// At most 1024 at a time; further ones are not tracked.
void track_child(pid_t pid);
void untrack_child(pid_t pid);

}  // namespace murmur::run
