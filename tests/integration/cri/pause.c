/* A pause process for test pod sandboxes and containers: sleeps until SIGTERM or SIGINT (which
   it handles, since as PID 1 of a PID namespace it would otherwise ignore them). Linked
   statically so it runs in an image that holds nothing else. */
#include <signal.h>
#include <unistd.h>

static void on_signal(int signo) {
  (void)signo;
  _exit(0);
}

int main(void) {
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  for (;;) pause();
}
