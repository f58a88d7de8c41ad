// Ctrl-C / SIGTERM handling for long-running commands: the first signal asks
// the work loop to stop at the next safe point (it then saves its state); a
// second one exits at once.
#pragma once

namespace murmur {

void install_interrupt_handler();
bool interrupted();

}  // namespace murmur
