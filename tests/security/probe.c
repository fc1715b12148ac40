/* Attacks on the host from inside a container, one line of output per probe:
 * "NAME RESULT", RESULT being "ok" (the call succeeded) or the errno's name.
 *
 * Built statically at test time (tests/security/conftest.py) and bind-mounted
 * into the container. Each probe runs in a child of its own, so one that
 * changes the process (a chroot, a setns) cannot disturb the others.
 *
 * usage: probe all HOST_PID HOST_MARKER DISK_MAJOR DISK_MINOR
 *        probe raw | fds | ns | vol NAME DIR | exe-watch SECONDS
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <linux/reboot.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif

static const char *res(long rc) { return rc < 0 ? strerrorname_np(errno) : "ok"; }

static void line(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(const char *name, const char *fmt, ...) {
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    dprintf(1, "%s %s\n", name, buf);
}

/* Run fn in a child and wait for it: a probe may change its own process. */
static void isolated(void (*fn)(char **), char **args) {
    pid_t pid = fork();
    if (pid == 0) {
        fn(args);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        dprintf(1, "probe-crashed status=%d\n", status);
}

static void simple(const char *name, long rc) { line(name, "%s", res(rc)); }

static long write_file(const char *path, const char *data) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    long rc = write(fd, data, strlen(data));
    int saved = errno;
    close(fd);
    errno = saved;
    return rc < 0 ? -1 : 0;
}

/* --- the probes ------------------------------------------------------------------- */

static void p_chroot(char **a) {  /* the second-chroot escape */
    const char *host_marker = a[0];
    mkdir("/jail", 0700);
    long first = chroot("/jail");  /* the cwd stays outside the new root */
    const char *first_res = res(first);
    for (int i = 0; i < 256; i++) chdir("..");
    long second = chroot(".");
    const char *second_res = res(second);
    const char *host = res(access(host_marker, F_OK));
    const char *own = res(access("/probe/probe", F_OK));
    line("chroot2", "chroot=%s again=%s host=%s own=%s", first_res, second_res, host, own);
}

static void p_mounts(char **a) {
    (void)a;
    mkdir("/tmp/m", 0700);
    simple("mount_tmpfs", mount("none", "/tmp/m", "tmpfs", 0, NULL));
    simple("mount_bind_root", mount("/", "/tmp/m", NULL, MS_BIND | MS_REC, NULL));
    simple("umount_root", umount2("/", MNT_DETACH));
    simple("umount_proc", umount2("/proc", MNT_DETACH));
    simple("remount_proc_rw", mount(NULL, "/proc", NULL, MS_REMOUNT, NULL));
    simple("remount_procsys_rw", mount(NULL, "/proc/sys", NULL, MS_REMOUNT | MS_BIND, NULL));
    simple("open_tree", syscall(SYS_open_tree, AT_FDCWD, "/", OPEN_TREE_CLONE));
    simple("fsopen", syscall(SYS_fsopen, "tmpfs", 0));
    simple("unshare_userns", unshare(CLONE_NEWUSER));
    simple("unshare_mntns", unshare(CLONE_NEWNS));
}

static void p_proc_writes(char **a) {
    (void)a;
    simple("sysrq_trigger", write_file("/proc/sysrq-trigger", "h"));
    simple("sys_hostname", write_file("/proc/sys/kernel/hostname", "pwned-by-probe"));
    simple("core_pattern", write_file("/proc/sys/kernel/core_pattern", "pwned-core-by-probe"));
    simple("sys_modprobe", write_file("/proc/sys/kernel/modprobe", "/tmp/pwned"));
}

static void p_devices(char **a) {
    unsigned maj = (unsigned)atoi(a[0]), min = (unsigned)atoi(a[1]);
    simple("mknod_blk", mknod("/tmp/hostdisk", S_IFBLK | 0600, makedev(maj, min)));
    int fd = open("/tmp/hostdisk", O_RDONLY | O_CLOEXEC);
    char buf[512];
    if (fd >= 0) {
        long n = read(fd, buf, sizeof buf);
        simple("read_hostdisk", n);
    } else {
        simple("read_hostdisk", -1);
    }
    int blocks = 0;
    DIR *d = opendir("/dev");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        struct stat st;
        char path[512];
        snprintf(path, sizeof path, "/dev/%s", e->d_name);
        if (lstat(path, &st) == 0 && S_ISBLK(st.st_mode)) blocks++;
    }
    if (d) closedir(d);
    line("dev_block_nodes", "%d", blocks);
}

static void p_kernel(char **a) {
    (void)a;
    static char image[64];  /* not an ELF module: a privileged caller would get ENOEXEC */
    simple("init_module", syscall(SYS_init_module, image, sizeof image, ""));
    int fd = open("/probe/probe", O_RDONLY | O_CLOEXEC);
    simple("finit_module", syscall(SYS_finit_module, fd, "", 0));
    simple("delete_module", syscall(SYS_delete_module, "ext4", O_NONBLOCK));
    simple("reboot", syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
                             LINUX_REBOOT_CMD_CAD_OFF, 0));
    simple("keyctl", syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, 0));
    simple("add_key", syscall(SYS_add_key, "user", "hutch", "x", 1, KEY_SPEC_SESSION_KEYRING));
    simple("request_key", syscall(SYS_request_key, "user", "hutch", NULL,
                                  KEY_SPEC_SESSION_KEYRING));
    simple("sethostname", sethostname("pwned", 5));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    simple("clock_settime", clock_settime(CLOCK_REALTIME, &ts));
}

static void p_raw(char **a) {
    (void)a;
    simple("raw_socket", socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
}

static void p_host_process(char **a) {
    pid_t host = (pid_t)atoi(a[0]);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d", host);
    simple("host_pid_visible", access(path, F_OK));
    simple("ptrace_host", ptrace(PTRACE_ATTACH, host, 0, 0));
    simple("kill_host", kill(host, SIGKILL));
    simple("pidfd_host", syscall(SYS_pidfd_open, host, 0));
}

static void p_shocker(char **a) {  /* open_by_handle_at on a host file system */
    (void)a;
    struct {
        unsigned int handle_bytes;
        int handle_type;
        unsigned char f_handle[8];
    } h = {8, 1, {2, 0, 0, 0, 0, 0, 0, 0}};  /* inode 2: the root of an ext* file system */
    int mount_fd = open("/probe", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    simple("open_by_handle_at", syscall(SYS_open_by_handle_at, mount_fd, &h, O_RDONLY));
    int mount_id;
    h.handle_bytes = 8;
    simple("name_to_handle_at", syscall(SYS_name_to_handle_at, AT_FDCWD, "/probe", &h,
                                        &mount_id, 0));
}

static int is_num(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

/* Every namespace file of every process and thread visible in /proc: which
 * namespaces they are, and whether any of them can be joined. */
static void p_setns(char **a) {
    (void)a;
    static const char *types[] = {"user", "mnt", "pid", "net", "ipc", "uts", "cgroup", "time"};
    char seen[8][1024] = {{0}};
    int joined = 0, tried = 0;
    char errs[256] = "";
    DIR *proc = opendir("/proc");
    struct dirent *p;
    while (proc && (p = readdir(proc))) {
        if (!is_num(p->d_name)) continue;
        char taskdir[128];
        snprintf(taskdir, sizeof taskdir, "/proc/%s/task", p->d_name);
        DIR *tasks = opendir(taskdir);
        struct dirent *t;
        while (tasks && (t = readdir(tasks))) {
            if (!is_num(t->d_name)) continue;
            for (int i = 0; i < 8; i++) {
                char path[256];
                struct stat st;
                snprintf(path, sizeof path, "%s/%s/ns/%s", taskdir, t->d_name, types[i]);
                if (stat(path, &st) != 0) continue;
                char ino[32];
                snprintf(ino, sizeof ino, "%lu,", (unsigned long)st.st_ino);
                if (!strstr(seen[i], ino)) strncat(seen[i], ino, sizeof seen[i] - strlen(seen[i]) - 1);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0) continue;
                tried++;
                if (setns(fd, 0) == 0) {
                    joined++;
                } else if (!strstr(errs, strerrorname_np(errno))) {
                    strcat(errs, strerrorname_np(errno));
                    strcat(errs, ",");
                }
                close(fd);
            }
        }
        if (tasks) closedir(tasks);
    }
    if (proc) closedir(proc);
    for (int i = 0; i < 8; i++) line("ns", "%s %s", types[i], seen[i]);
    line("setns", "tried=%d joined=%d errors=%s", tried, joined, errs);
}

static void p_exe_write(char **a) {  /* overwrite a binary through /proc/PID/exe */
    (void)a;
    char errs[256] = "";
    int opened = 0;
    DIR *proc = opendir("/proc");
    struct dirent *p;
    while (proc && (p = readdir(proc))) {
        if (!is_num(p->d_name)) continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/%s/exe", p->d_name);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            opened++;
            close(fd);
        } else if (!strstr(errs, strerrorname_np(errno))) {
            strcat(errs, strerrorname_np(errno));
            strcat(errs, ",");
        }
    }
    if (proc) closedir(proc);
    line("exe_write", "opened=%d errors=%s", opened, errs);
}

static void p_fds(char **a) {  /* what this process inherited */
    (void)a;
    DIR *d = opendir("/proc/self/fd");
    int own = dirfd(d);
    char out[512] = "";
    struct dirent *e;
    int fds[256], n = 0;
    while ((e = readdir(d)) && n < 256)
        if (is_num(e->d_name) && atoi(e->d_name) != own) fds[n++] = atoi(e->d_name);
    closedir(d);
    for (int i = 0; i < n; i++)  /* sorted, for a stable line */
        for (int j = i + 1; j < n; j++)
            if (fds[j] < fds[i]) { int x = fds[i]; fds[i] = fds[j]; fds[j] = x; }
    for (int i = 0; i < n; i++) {
        char one[16];
        snprintf(one, sizeof one, "%s%d", i ? "," : "", fds[i]);
        strcat(out, one);
    }
    line("fds", "%s", out);
}

static void p_vol(char **a) {  /* a volume: owner of its host file, writing it, creating */
    const char *name = a[0], *dir = a[1];
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/hostfile", dir);
    const char *owner_res = res(stat(path, &st));
    char owner[64];
    snprintf(owner, sizeof owner, "%u:%u", st.st_uid, st.st_gid);
    long w;
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd >= 0) {
        w = write(fd, "container\n", 10);
        close(fd);
    } else {
        w = -1;
    }
    const char *write_res = res(w);
    snprintf(path, sizeof path, "%s/made-inside", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    const char *create_res = res(fd);
    if (fd >= 0) close(fd);
    line("vol", "%s owner=%s write=%s create=%s", name,
         strcmp(owner_res, "ok") ? owner_res : owner, write_res, create_res);
}

/* Watch /proc/PID/exe of every process for SECONDS, or until /tmp/stop-watch exists:
 * which files they are (dev:ino), and whether any opens for writing. */
static void exe_watch(int seconds) {
    char seen[65536] = "";
    int writable = 0;
    time_t end = time(NULL) + seconds;
    while (time(NULL) < end && access("/tmp/stop-watch", F_OK) != 0) {
        DIR *proc = opendir("/proc");
        struct dirent *p;
        while (proc && (p = readdir(proc))) {
            if (!is_num(p->d_name)) continue;
            char path[64];
            struct stat st;
            snprintf(path, sizeof path, "/proc/%s/exe", p->d_name);
            int fd = open(path, O_PATH | O_CLOEXEC);
            if (fd < 0) continue;
            if (fstat(fd, &st) == 0) {
                char id[64];
                snprintf(id, sizeof id, "%lu:%lu ", (unsigned long)st.st_dev,
                         (unsigned long)st.st_ino);
                if (!strstr(seen, id) && strlen(seen) + strlen(id) < sizeof seen - 1)
                    strcat(seen, id);
            }
            close(fd);
            fd = open(path, O_WRONLY | O_CLOEXEC);
            if (fd >= 0) {
                writable++;
                close(fd);
            }
        }
        if (proc) closedir(proc);
        struct timespec pause = {0, 2000000};
        nanosleep(&pause, NULL);
    }
    line("exe_watch", "writable=%d seen=%s", writable, seen);
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *mode = argv[1];
    if (!strcmp(mode, "all") && argc == 6) {
        char *host_pid[] = {argv[2]}, *marker[] = {argv[3]}, *disk[] = {argv[4], argv[5]};
        isolated(p_fds, NULL);
        isolated(p_chroot, marker);
        isolated(p_mounts, NULL);
        isolated(p_proc_writes, NULL);
        isolated(p_devices, disk);
        isolated(p_kernel, NULL);
        isolated(p_raw, NULL);
        isolated(p_host_process, host_pid);
        isolated(p_shocker, NULL);
        isolated(p_setns, NULL);
        isolated(p_exe_write, NULL);
        return 0;
    }
    if (!strcmp(mode, "raw")) { p_raw(NULL); return 0; }
    if (!strcmp(mode, "fds")) { p_fds(NULL); return 0; }
    if (!strcmp(mode, "ns")) { p_setns(NULL); return 0; }
    if (!strcmp(mode, "vol") && argc == 4) { p_vol(argv + 2); return 0; }
    if (!strcmp(mode, "exe-watch") && argc == 3) {
        exe_watch(atoi(argv[2]));
        return 0;
    }
    dprintf(2, "probe: bad arguments\n");
    return 2;
}
