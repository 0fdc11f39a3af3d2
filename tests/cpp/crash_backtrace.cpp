// Prints a symbolized backtrace to stderr when a test crashes (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT), then lets
// the signal kill the process as usual: a crash on a remote GPU node is diagnosable from the CTest log alone.
#include <execinfo.h>
#include <unistd.h>

#include <csignal>

namespace {

void on_crash(int sig) {
  void* frames[64];
  const int n = ::backtrace(frames, 64);
  const char msg[] = "\n*** supra_tests crashed; backtrace:\n";
  (void)!::write(STDERR_FILENO, msg, sizeof(msg) - 1);
  ::backtrace_symbols_fd(frames, n, STDERR_FILENO);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

const bool installed = [] {
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT}) std::signal(sig, on_crash);
  return true;
}();

}  // namespace
