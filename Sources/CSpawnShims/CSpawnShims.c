// posix_spawn's session, chdir and closefrom options are GNU extensions that Swift's Glibc
// module does not import: set them up here, in one call.
#define _GNU_SOURCE
#include "CSpawnShims.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

int harrow_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[], const char *directory, int stdout_fd,
                 int stderr_fd) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    sigset_t all, none;
    int result = posix_spawn_file_actions_init(&actions);
    if (result != 0) return result;
    result = posix_spawnattr_init(&attributes);
    if (result != 0) {
        posix_spawn_file_actions_destroy(&actions);
        return result;
    }
    sigfillset(&all);
    sigemptyset(&none);
    if ((result = posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)) == 0 &&
        (result = posix_spawn_file_actions_adddup2(&actions, stdout_fd, 1)) == 0 &&
        (result = posix_spawn_file_actions_adddup2(&actions, stderr_fd, 2)) == 0 &&
        (result = posix_spawn_file_actions_addchdir_np(&actions, directory)) == 0 &&
        (result = posix_spawn_file_actions_addclosefrom_np(&actions, 3)) == 0 &&
        (result = posix_spawnattr_setsigdefault(&attributes, &all)) == 0 &&
        (result = posix_spawnattr_setsigmask(&attributes, &none)) == 0 &&
        (result = posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)) == 0) {
        result = posix_spawn(pid, path, &actions, &attributes, argv, envp);
    }
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    return result;
}

int harrow_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }
