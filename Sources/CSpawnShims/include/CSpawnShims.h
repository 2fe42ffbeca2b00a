#ifndef HARROW_CSPAWNSHIMS_H
#define HARROW_CSPAWNSHIMS_H

#include <sys/types.h>

/// Starts `path` (absolute) with `argv` and exactly the environment `envp`, in `directory`, as
/// the leader of a new session and process group, with every signal at its default action and
/// none blocked (the worker ignores SIGTERM and SIGINT for its own handling; a script must not
/// inherit that), stdin on /dev/null, stdout and stderr on the given descriptors, and no other
/// descriptor of the worker open. Returns 0 and the child's pid, or an errno value.
int harrow_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[], const char *directory, int stdout_fd,
                 int stderr_fd);

/// pipe2(fds, O_CLOEXEC): a pipe no other process started meanwhile inherits.
int harrow_pipe_cloexec(int fds[2]);

#endif
