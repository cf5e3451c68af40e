// SPDX-License-Identifier: MIT
// sha256.c — SHA-256 of a file and of a checkpoint directory (registry.h),
// through OpenSSL's EVP digest API (libcrypto). The directory digest is the
// SHA-256 of the text sha256sum(1) prints for the directory's files sorted by
// name in byte order — "<hex>  <name>\n" per file — so `LC_ALL=C sha256sum * |
// sha256sum` run in the directory gives the same value (tests check it).
// Hidden names (leading '.') are skipped as the shell's `*` skips them.
#include "registry/registry.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

static void to_hex(const unsigned char *md, char hex[65]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
}

keel_status keel_file_sha256(const char *path, char hex[65], keel_err *err) {
    hex[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return KEEL_FAIL(err, KEEL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: not a regular file", path);
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t cap = (size_t)1 << 20;
    unsigned char *buf = keel_malloc(cap);
    keel_status st = KEEL_OK;
    if (!ctx || !buf) {
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory for SHA-256", path);
        goto done;
    }
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        st = KEEL_FAIL(err, KEEL_ERR_IO, "%s: EVP_DigestInit_ex(sha256) failed", path);
        goto done;
    }
    for (;;) {
        ssize_t r = read(fd, buf, cap);
        if (r < 0) {
            if (errno == EINTR) continue;
            st = KEEL_FAIL(err, KEEL_ERR_IO, "%s: read failed: %s", path, strerror(errno));
            goto done;
        }
        if (r == 0) break;
        if (EVP_DigestUpdate(ctx, buf, (size_t)r) != 1) {
            st = KEEL_FAIL(err, KEEL_ERR_IO, "%s: EVP_DigestUpdate failed", path);
            goto done;
        }
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32) {
        st = KEEL_FAIL(err, KEEL_ERR_IO, "%s: EVP_DigestFinal_ex failed", path);
        goto done;
    }
    to_hex(md, hex);
done:
    free(buf);
    EVP_MD_CTX_free(ctx);
    close(fd);
    return st;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b); // byte order (C locale)
}

keel_status keel_dir_sha256(const char *dir, char hex[65], keel_err *err) {
    hex[0] = '\0';
    DIR *d = opendir(dir);
    if (!d) return KEEL_FAIL(err, KEEL_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    keel_status st = KEEL_OK;
    keel_buf text = {0};
    EVP_MD_CTX *ctx = NULL;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue; // ".", "..", hidden: not matched by `*`
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 16;
            char **nn = keel_realloc(names, nc * sizeof *nn);
            if (!nn) { st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory listing files", dir); goto done; }
            names = nn;
            cap = nc;
        }
        if (!(names[n] = keel_strdup(e->d_name))) {
            st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory listing files", dir);
            goto done;
        }
        n++;
    }
    if (n) qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n; i++) {
        // sha256sum escapes names holding '\n' or '\\' (a leading backslash):
        // refuse them rather than hash a text the tool would not print.
        if (strpbrk(names[i], "\n\\")) {
            st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: file name '%s' holds a newline or backslash", dir, names[i]);
            goto done;
        }
        char *p = keel_path_join(dir, names[i]);
        if (!p) { st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", dir); goto done; }
        struct stat sb;
        if (stat(p, &sb) != 0) {
            st = KEEL_FAIL(err, KEEL_ERR_IO, "%s: cannot stat: %s", p, strerror(errno));
            free(p);
            goto done;
        }
        if (!S_ISREG(sb.st_mode)) {
            st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: '%s' is not a regular file (a checkpoint directory holds files only)",
                           dir, names[i]);
            free(p);
            goto done;
        }
        char fh[65];
        st = keel_file_sha256(p, fh, err);
        free(p);
        if (st != KEEL_OK) goto done;
        if (!keel_buf_printf(&text, "%s  %s\n", fh, names[i])) {
            st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", dir);
            goto done;
        }
    }
    ctx = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, text.data ? text.data : "", text.len) != 1 ||
        EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32) {
        st = KEEL_FAIL(err, KEEL_ERR_IO, "%s: SHA-256 of the file list failed", dir);
        goto done;
    }
    to_hex(md, hex);
done:
    EVP_MD_CTX_free(ctx);
    free(text.data);
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    closedir(d);
    return st;
}
