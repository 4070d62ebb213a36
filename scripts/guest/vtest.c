// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
/*
 * vtest: small static test tool for the guest tests (built with `gcc -static` into the guest
 * cache; the same binary also runs on the host, so both sides produce identical listings).
 *
 *   vtest tree DIR                       one line per entry below DIR (sorted by the caller):
 *                                        PATH TYPE MODE UID GID SIZE NLINK MTIME [-> TARGET]
 *   vtest cat FILE OFF LEN [direct]      copy LEN bytes at byte offset OFF to stdout
 *                                        (pread; exit status = errno on failure)
 *   vtest mutate DIR FILE SUBDIR         try every mutation; one line "OP ERRNO" each
 *   vtest measure FILE                   FS_IOC_MEASURE_VERITY  -> "ok ALG HEX" | "errno N"
 *   vtest flags FILE                     FS_IOC_GETFLAGS        -> "ok 0xFLAGS verity=0|1" | "errno N",
 *                                        then FS_IOC_FSGETXATTR -> " xflags=0xX" | " xflags=errnoN"
 *   vtest getxattr PATH NAME             lgetxattr -> "ok VALUE" | "errno N"
 *   vtest gen SEED SIZE                  SIZE deterministic pseudo-random bytes to stdout
 *   vtest seqread FILE [BS]              sequential read; prints bytes, seconds, MB/s
 *   vtest randread FILE SECS DIRECT      4 KiB random preads for SECS seconds; prints IOPS
 *   vtest gentree DIR N                  N deterministic files in 100-file directories (sizes
 *                                        100 B to 64 KiB, log-uniform), like a rootfs's
 *   vtest walk DIR                       readdir + lstat of every entry below DIR (find -ls);
 *                                        prints entries, seconds, entries/s
 *   vtest readall DIR MAX                open + read + close the first MAX regular files below
 *                                        DIR (sorted walk); prints files, bytes, seconds, files/s
 *   vtest seek FILE                      "hole H data0 D" (SEEK_HOLE / SEEK_DATA from 0, or errno=N)
 *   vtest held SECS FILE:OFF:LEN...      open every FILE (O_DIRECT), fstat it ("open FILE MODE UID
 *                                        GID SIZE"), print VTEST-HELD-OPEN to stdout, sleep SECS,
 *                                        fstat again ("fstat ...") and pread LEN at OFF: "read FILE
 *                                        OFF n=BYTES fnv=HEX" (FNV-1a 64) or "read FILE OFF errno=N"
 * Paired forms: the same work on two mounts of one share, interleaved in small units (a
 * top-level directory of the tree, 16 MiB of a file, 32 random reads), the side going first
 * alternating; each side's time is the sum of its units, so host load hits both alike.
 * They print one line per side: "side=1 ..." and "side=2 ...".
 *   vtest pairwalk DIR1 DIR2             walk per top-level entry
 *   vtest pairreadall DIR1 DIR2 MAX      readall per top-level entry, MAX files per side
 *   vtest pairseq FILE1 FILE2            sequential 1 MiB reads, 16 MiB per unit; MB/s
 *   vtest pairrand FILE1 FILE2 SECS DIRECT  4 KiB random preads, 32 per unit; IOPS
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>
#include <linux/fsverity.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <sys/time.h>

static int fail(const char *what, const char *path)
{
    int e = errno;
    fprintf(stderr, "vtest: %s %s: errno=%d (%s)\n", what, path, e, strerror(e));
    return e ? e : 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Walk DIR recursively (no symlink following), names sorted bytewise. */
static int tree(const char *root, const char *rel)
{
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    if (!d)
        return fail("opendir", path);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(names, cap * sizeof *names);
            if (!names)
                return 1;
        }
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char r[4096], p[8200];
        struct stat st;
        snprintf(r, sizeof r, "%s%s%s", rel, *rel ? "/" : "", names[i]);
        snprintf(p, sizeof p, "%s/%s", root, r);
        if (lstat(p, &st) != 0) {
            rc = fail("lstat", p);
            continue;
        }
        char type = S_ISREG(st.st_mode) ? 'f' : S_ISDIR(st.st_mode) ? 'd' : S_ISLNK(st.st_mode) ? 'l' : '?';
        /* directory sizes depend on the host file system; print them as '-' */
        printf("%s %c %04o %u %u ", r, type, (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid,
               (unsigned)st.st_gid);
        if (type == 'd')
            printf("- %lu %lld\n", (unsigned long)st.st_nlink, (long long)st.st_mtime);
        else if (type == 'l') {
            char t[4096];
            ssize_t l = readlink(p, t, sizeof t - 1);
            if (l < 0) {
                rc = fail("readlink", p);
                l = 0;
            }
            t[l] = 0;
            printf("%lld %lu %lld -> %s\n", (long long)st.st_size, (unsigned long)st.st_nlink,
                   (long long)st.st_mtime, t);
        } else
            printf("%lld %lu %lld\n", (long long)st.st_size, (unsigned long)st.st_nlink, (long long)st.st_mtime);
        if (type == 'd') {
            int r2 = tree(root, r);
            if (r2)
                rc = r2;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static int cat(const char *path, long long off, long long len, int direct)
{
    int fd = open(path, O_RDONLY | (direct ? O_DIRECT : 0));
    if (fd < 0)
        return fail("open", path);
    size_t bs = 1 << 20;
    void *buf;
    if (posix_memalign(&buf, 4096, bs))
        return 1;
    while (len > 0) {
        size_t want = len < (long long)bs ? (size_t)len : bs;
        ssize_t n = pread(fd, buf, want, off);
        if (n < 0)
            return fail("pread", path);
        if (n == 0)
            break;
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
            return fail("write", "stdout");
        off += n;
        len -= n;
    }
    free(buf);
    close(fd);
    return fflush(stdout) ? 1 : 0;
}

static void report(const char *op, int rc)
{
    printf("%s %d\n", op, rc == 0 ? 0 : errno);
}

/* Every mutation a read-only share must refuse.  DIR: the mount, FILE/SUB: an existing
 * regular file and an existing (non-empty) directory below it. */
static int mutate(const char *dir, const char *file, const char *sub)
{
    char p[4096], q[4096];
    int fd;
    fd = open(file, O_WRONLY);
    report("open-write", fd < 0 ? -1 : 0);
    if (fd >= 0) {
        report("write", write(fd, "x", 1) == 1 ? 0 : -1);
        close(fd);
    }
    fd = open(file, O_RDWR | O_TRUNC);
    report("open-trunc", fd < 0 ? -1 : 0);
    if (fd >= 0)
        close(fd);
    report("truncate", truncate(file, 0));
    snprintf(p, sizeof p, "%s/vtest-new-file", dir);
    fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
    report("create", fd < 0 ? -1 : 0);
    if (fd >= 0)
        close(fd);
    report("mknod-fifo", mknod(p, S_IFIFO | 0644, 0));
    report("unlink", unlink(file));
    snprintf(p, sizeof p, "%s/vtest-new-dir", dir);
    report("mkdir", mkdir(p, 0755));
    report("rmdir", rmdir(sub));
    snprintf(p, sizeof p, "%s/vtest-renamed", dir);
    report("rename", rename(file, p));
    snprintf(q, sizeof q, "%s/vtest-symlink", dir);
    report("symlink", symlink("target", q));
    snprintf(q, sizeof q, "%s/vtest-hardlink", dir);
    report("link", link(file, q));
    report("chmod", chmod(file, 0600));
    report("chown", chown(file, 1, 1));
    struct timeval tv[2] = {{1, 0}, {1, 0}};
    report("utimes", utimes(file, tv));
    report("setxattr", setxattr(file, "user.vtest", "1", 1, 0));
    report("removexattr", removexattr(file, "user.vtest"));
    return 0;
}

static int measure(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return fail("open", path);
    struct {
        struct fsverity_digest d;
        unsigned char buf[64];
    } m;
    memset(&m, 0, sizeof m);
    m.d.digest_size = 64;
    if (ioctl(fd, FS_IOC_MEASURE_VERITY, &m) != 0) {
        printf("errno %d\n", errno);
        return 0;
    }
    printf("ok %u ", m.d.digest_algorithm);
    for (unsigned i = 0; i < m.d.digest_size && i < 64; i++)
        printf("%02x", m.d.digest[i]);
    printf("\n");
    close(fd);
    return 0;
}

static int flags(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return fail("open", path);
    int fl = 0;
    if (ioctl(fd, FS_IOC_GETFLAGS, &fl) != 0)
        printf("errno %d", errno);
    else
        printf("ok 0x%x verity=%d", (unsigned)fl, !!(fl & FS_VERITY_FL));
    struct fsxattr fx;
    memset(&fx, 0, sizeof(fx));
    if (ioctl(fd, FS_IOC_FSGETXATTR, &fx) != 0)
        printf(" xflags=errno%d\n", errno);
    else
        printf(" xflags=0x%x\n", (unsigned)fx.fsx_xflags);
    close(fd);
    return 0;
}

static int getxattr_cmd(const char *path, const char *name)
{
    char buf[4096];
    ssize_t n = lgetxattr(path, name, buf, sizeof(buf) - 1);
    if (n < 0) {
        printf("errno %d\n", errno);
        return 1;
    }
    buf[n] = 0;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] <= ' ' || buf[i] > '~')
            buf[i] = '?';
    printf("ok %s\n", buf);
    return 0;
}

static int gen(unsigned long long seed, long long size)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
    static uint64_t buf[8192];
    while (size > 0) {
        for (size_t i = 0; i < sizeof buf / 8; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = x;
        }
        size_t n = size < (long long)sizeof buf ? (size_t)size : sizeof buf;
        if (fwrite(buf, 1, n, stdout) != n)
            return fail("write", "stdout");
        size -= n;
    }
    return fflush(stdout) ? 1 : 0;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int seqread(const char *path, size_t bs)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return fail("open", path);
    char *buf = malloc(bs);
    if (!buf)
        return 1;
    double t0 = now();
    unsigned long long tot = 0;
    ssize_t n;
    while ((n = read(fd, buf, bs)) > 0)
        tot += (unsigned long long)n;
    if (n < 0)
        return fail("read", path);
    double dt = now() - t0;
    printf("bytes=%llu secs=%.3f MBps=%.1f\n", tot, dt, tot / dt / 1e6);
    close(fd);
    free(buf);
    return 0;
}

static int randread(const char *path, double secs, int direct)
{
    int fd = open(path, O_RDONLY | (direct ? O_DIRECT : 0));
    if (fd < 0)
        return fail("open", path);
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 4096)
        return fail("fstat", path);
    unsigned long long nblk = (unsigned long long)st.st_size / 4096, ops = 0;
    uint64_t x = 88172645463325252ULL;
    void *buf;
    if (posix_memalign(&buf, 4096, 4096))
        return 1;
    double t0 = now(), t;
    do {
        for (int i = 0; i < 64; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (pread(fd, buf, 4096, (off_t)(x % nblk) * 4096) != 4096)
                return fail("pread", path);
            ops++;
        }
        t = now() - t0;
    } while (t < secs);
    printf("direct=%d ops=%llu secs=%.3f IOPS=%.0f\n", direct, ops, t, ops / t);
    close(fd);
    free(buf);
    return 0;
}

/* Sizes of the generated tree: a fixed linear congruential sequence, log-uniform between
 * 100 B and 64 KiB (the bulk of a rootfs's files). */
static double lcg_next(uint64_t *x)
{
    *x = (*x * 1103515245ULL + 12345ULL) % 2147483648ULL;
    return (double)*x / 2147483648.0;
}

/* exp(y) for 0 <= y < 8 without libm (the sizes must not depend on a libm's rounding). */
static double exp_small(double y)
{
    double z = y / 64, t = 1, term = 1;
    for (int k = 1; k < 12; k++) {
        term *= z / k;
        t += term;
    }
    for (int k = 0; k < 6; k++)
        t *= t;
    return t;
}

static int gentree(const char *root, long n)
{
    static char buf[65536];
    uint64_t lcg = 12345;
    if (mkdir(root, 0755) != 0 && errno != EEXIST)
        return fail("mkdir", root);
    for (long i = 0; i < n; i++) {
        char dir[4096], path[4200];
        snprintf(dir, sizeof dir, "%s/d%03ld", root, i / 100);
        if (i % 100 == 0 && mkdir(dir, 0755) != 0 && errno != EEXIST)
            return fail("mkdir", dir);
        size_t size = (size_t)(100.0 * exp_small(lcg_next(&lcg) * 6.48519) /* ln(65536 / 100) */);
        if (size > sizeof buf)
            size = sizeof buf;
        uint64_t x = (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ULL + 1;
        for (size_t k = 0; k + 8 <= sizeof buf; k += 8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            memcpy(buf + k, &x, 8);
        }
        snprintf(path, sizeof path, "%s/f%05ld", dir, i);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            return fail("open", path);
        if (write(fd, buf, size) != (ssize_t)size)
            return fail("write", path);
        close(fd);
    }
    return 0;
}

struct walk_state {
    int read_files;      /* 0: lstat every entry; 1: open + read regular files */
    unsigned long long max, entries, files, bytes;
    char *buf;
};

static int walk_dir(const char *path, struct walk_state *w);

/* One entry: lstat, then into a directory, or read a regular file (readall). */
static int visit(const char *p, struct walk_state *w)
{
    struct stat st;
    if (lstat(p, &st) != 0)
        return fail("lstat", p);
    w->entries++;
    if (S_ISDIR(st.st_mode))
        return walk_dir(p, w);
    if (!S_ISREG(st.st_mode) || !w->read_files)
        return 0;
    int fd = open(p, O_RDONLY);
    if (fd < 0)
        return fail("open", p);
    ssize_t got;
    while ((got = read(fd, w->buf, 1 << 20)) > 0)
        w->bytes += (unsigned long long)got;
    int rc = got < 0 ? fail("read", p) : 0;
    close(fd);
    w->files++;
    return rc;
}

/* Sorted recursive walk below PATH; stops early once MAX files were read. */
static int walk_dir(const char *path, struct walk_state *w)
{
    struct dirent **names;
    int n = scandir(path, &names, NULL, alphasort);
    if (n < 0)
        return fail("scandir", path);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *nm = names[i]->d_name;
        char p[4096];
        if (strcmp(nm, ".") && strcmp(nm, "..") && !rc && !(w->read_files && w->files >= w->max)) {
            snprintf(p, sizeof p, "%s/%s", path, nm);
            rc = visit(p, w);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static int walk_cmd(const char *root, int read_files, unsigned long long max)
{
    struct walk_state w = {read_files, max, 0, 0, 0, malloc(1 << 20)};
    if (!w.buf)
        return 1;
    double t0 = now();
    int rc = walk_dir(root, &w);
    double dt = now() - t0;
    if (rc)
        return rc;
    if (read_files)
        printf("files=%llu bytes=%llu secs=%.3f per_s=%.1f\n", w.files, w.bytes, dt, w.files / dt);
    else
        printf("entries=%llu secs=%.3f per_s=%.1f\n", w.entries, dt, w.entries / dt);
    free(w.buf);
    return 0;
}

static int pair_tree(const char *d1, const char *d2, int read_files, unsigned long long max)
{
    const char *dirs[2] = {d1, d2};
    struct walk_state w[2] = {{read_files, max, 0, 0, 0, malloc(1 << 20)},
                              {read_files, max, 0, 0, 0, malloc(1 << 20)}};
    double t[2] = {0, 0};
    struct dirent **names;
    if (!w[0].buf || !w[1].buf)
        return 1;
    int n = scandir(d1, &names, NULL, alphasort);
    if (n < 0)
        return fail("scandir", d1);
    int rc = 0, unit = 0;
    for (int i = 0; i < n; i++) {
        const char *nm = names[i]->d_name;
        if (strcmp(nm, ".") && strcmp(nm, "..") && !rc) {
            for (int k = 0; k < 2 && !rc; k++) {
                int side = unit % 2 ? 1 - k : k;
                struct walk_state *ws = &w[side];
                char p[4096];
                if (read_files && ws->files >= ws->max)
                    continue;
                snprintf(p, sizeof p, "%s/%s", dirs[side], nm);
                double t0 = now();
                rc = visit(p, ws);
                t[side] += now() - t0;
            }
            unit++;
        }
        free(names[i]);
    }
    free(names);
    if (rc)
        return rc;
    for (int side = 0; side < 2; side++) {
        if (read_files)
            printf("side=%d files=%llu bytes=%llu secs=%.3f per_s=%.1f\n", side + 1, w[side].files,
                   w[side].bytes, t[side], w[side].files / t[side]);
        else
            printf("side=%d entries=%llu secs=%.3f per_s=%.1f\n", side + 1, w[side].entries, t[side],
                   w[side].entries / t[side]);
        free(w[side].buf);
    }
    return 0;
}

static int pair_seq(const char *f1, const char *f2)
{
    const char *files[2] = {f1, f2};
    int fd[2];
    unsigned long long tot[2] = {0, 0};
    double t[2] = {0, 0};
    int done[2] = {0, 0};
    char *buf = malloc(1 << 20);
    if (!buf)
        return 1;
    for (int side = 0; side < 2; side++)
        if ((fd[side] = open(files[side], O_RDONLY)) < 0)
            return fail("open", files[side]);
    for (int unit = 0; !done[0] || !done[1]; unit++) {
        for (int k = 0; k < 2; k++) {
            int side = unit % 2 ? 1 - k : k;
            double t0 = now();
            for (int j = 0; j < 16 && !done[side]; j++) {
                ssize_t got = read(fd[side], buf, 1 << 20);
                if (got < 0)
                    return fail("read", files[side]);
                if (got == 0)
                    done[side] = 1;
                tot[side] += (unsigned long long)got;
            }
            t[side] += now() - t0;
        }
    }
    for (int side = 0; side < 2; side++) {
        printf("side=%d bytes=%llu secs=%.3f MBps=%.1f\n", side + 1, tot[side], t[side],
               tot[side] / t[side] / 1e6);
        close(fd[side]);
    }
    free(buf);
    return 0;
}

static int pair_rand(const char *f1, const char *f2, double secs, int direct)
{
    const char *files[2] = {f1, f2};
    int fd[2];
    unsigned long long nblk[2], ops[2] = {0, 0};
    double t[2] = {0, 0};
    uint64_t x[2] = {88172645463325252ULL, 88172645463325252ULL};
    void *buf;
    if (posix_memalign(&buf, 4096, 4096))
        return 1;
    for (int side = 0; side < 2; side++) {
        struct stat st;
        if ((fd[side] = open(files[side], O_RDONLY | (direct ? O_DIRECT : 0))) < 0)
            return fail("open", files[side]);
        if (fstat(fd[side], &st) != 0 || st.st_size < 4096)
            return fail("fstat", files[side]);
        nblk[side] = (unsigned long long)st.st_size / 4096;
    }
    for (int unit = 0; t[0] + t[1] < 2 * secs; unit++) {
        for (int k = 0; k < 2; k++) {
            int side = unit % 2 ? 1 - k : k;
            double t0 = now();
            for (int i = 0; i < 32; i++) {
                x[side] ^= x[side] << 13;
                x[side] ^= x[side] >> 7;
                x[side] ^= x[side] << 17;
                if (pread(fd[side], buf, 4096, (off_t)(x[side] % nblk[side]) * 4096) != 4096)
                    return fail("pread", files[side]);
                ops[side]++;
            }
            t[side] += now() - t0;
        }
    }
    for (int side = 0; side < 2; side++) {
        printf("side=%d direct=%d ops=%llu secs=%.3f IOPS=%.0f\n", side + 1, direct, ops[side], t[side],
               ops[side] / t[side]);
        close(fd[side]);
    }
    free(buf);
    return 0;
}

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static int seek_probe(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return fail("open", path);
    off_t hole = lseek(fd, 0, SEEK_HOLE);
    int he = errno;
    off_t data = lseek(fd, 0, SEEK_DATA);
    int de = errno;
    if (hole < 0)
        printf("hole errno=%d ", he);
    else
        printf("hole %lld ", (long long)hole);
    if (data < 0)
        printf("data0 errno=%d\n", de);
    else
        printf("data0 %lld\n", (long long)data);
    close(fd);
    return 0;
}

static void print_stat(const char *what, const char *path, int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        printf("%s %s errno=%d\n", what, path, errno);
    else
        printf("%s %s %o %u %u %lld\n", what, path, (unsigned)st.st_mode, (unsigned)st.st_uid,
               (unsigned)st.st_gid, (long long)st.st_size);
}

/* Files held open while the host changes them (the guest tamper matrix). */
static int held(int secs, int n, char **specs)
{
    int fds[64];
    char paths[64][1024];
    long long offs[64], lens[64];
    if (n > 64)
        return 2;
    for (int i = 0; i < n; i++) {
        if (sscanf(specs[i], "%1023[^:]:%lld:%lld", paths[i], &offs[i], &lens[i]) != 3)
            return 2;
        fds[i] = open(paths[i], O_RDONLY | O_DIRECT);
        if (fds[i] < 0)
            printf("open %s errno=%d\n", paths[i], errno);
        else
            print_stat("open", paths[i], fds[i]);
    }
    fflush(stdout);
    fprintf(stderr, "VTEST-HELD-OPEN\n");
    sleep((unsigned)secs);
    void *buf;
    if (posix_memalign(&buf, 4096, 1 << 20))
        return 1;
    for (int i = 0; i < n; i++) {
        if (fds[i] < 0)
            continue;
        print_stat("fstat", paths[i], fds[i]);
        size_t len = lens[i] < (1 << 20) ? (size_t)lens[i] : (1 << 20);
        ssize_t got = pread(fds[i], buf, len, offs[i]);
        if (got < 0)
            printf("read %s %lld errno=%d\n", paths[i], offs[i], errno);
        else
            printf("read %s %lld n=%zd fnv=%016llx\n", paths[i], offs[i], got,
                   (unsigned long long)fnv1a(buf, (size_t)got));
        close(fds[i]);
    }
    free(buf);
    return fflush(stdout) ? 1 : 0;
}

int main(int argc, char **argv)
{
    const char *op = argc > 1 ? argv[1] : "";
    if (!strcmp(op, "tree") && argc == 3)
        return tree(argv[2], "");
    if (!strcmp(op, "seek") && argc == 3)
        return seek_probe(argv[2]);
    if (!strcmp(op, "held") && argc >= 4)
        return held(atoi(argv[2]), argc - 3, argv + 3);
    if (!strcmp(op, "cat") && (argc == 5 || argc == 6))
        return cat(argv[2], atoll(argv[3]), atoll(argv[4]), argc == 6 && !strcmp(argv[5], "direct"));
    if (!strcmp(op, "mutate") && argc == 5)
        return mutate(argv[2], argv[3], argv[4]);
    if (!strcmp(op, "measure") && argc == 3)
        return measure(argv[2]);
    if (!strcmp(op, "flags") && argc == 3)
        return flags(argv[2]);
    if (!strcmp(op, "getxattr") && argc == 4)
        return getxattr_cmd(argv[2], argv[3]);
    if (!strcmp(op, "gen") && argc == 4)
        return gen(strtoull(argv[2], NULL, 0), atoll(argv[3]));
    if (!strcmp(op, "seqread") && (argc == 3 || argc == 4))
        return seqread(argv[2], argc == 4 ? strtoul(argv[3], NULL, 0) : 1 << 20);
    if (!strcmp(op, "randread") && argc == 5)
        return randread(argv[2], atof(argv[3]), atoi(argv[4]));
    if (!strcmp(op, "gentree") && argc == 4)
        return gentree(argv[2], atol(argv[3]));
    if (!strcmp(op, "walk") && argc == 3)
        return walk_cmd(argv[2], 0, 0);
    if (!strcmp(op, "readall") && argc == 4)
        return walk_cmd(argv[2], 1, strtoull(argv[3], NULL, 0));
    if (!strcmp(op, "pairwalk") && argc == 4)
        return pair_tree(argv[2], argv[3], 0, 0);
    if (!strcmp(op, "pairreadall") && argc == 5)
        return pair_tree(argv[2], argv[3], 1, strtoull(argv[4], NULL, 0));
    if (!strcmp(op, "pairseq") && argc == 4)
        return pair_seq(argv[2], argv[3]);
    if (!strcmp(op, "pairrand") && argc == 6)
        return pair_rand(argv[2], argv[3], atof(argv[4]), atoi(argv[5]));
    fprintf(stderr, "usage: vtest tree DIR | cat FILE OFF LEN [direct] | mutate DIR FILE SUBDIR |\n"
                    "       measure FILE | flags FILE | getxattr PATH NAME | gen SEED SIZE | seqread FILE [BS] |\n"
                    "       randread FILE SECS DIRECT | gentree DIR N | walk DIR | readall DIR MAX |\n"
                    "       pairwalk DIR1 DIR2 | pairreadall DIR1 DIR2 MAX | pairseq FILE1 FILE2 |\n"
                    "       pairrand FILE1 FILE2 SECS DIRECT | seek FILE | held SECS FILE:OFF:LEN...\n");
    return 2;
}
