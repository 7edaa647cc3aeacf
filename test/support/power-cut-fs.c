/*
 * power-cut-fs: a one-directory FUSE file system that keeps everything not yet fsynced in memory,
 * so that killing it is a power cut. Test tool for the power-loss tests (built by power-cut-fs.ts).
 *
 *   power-cut-fs DURABLE STORE MOUNTPOINT
 *
 * DURABLE is a real directory holding exactly the durable state: the names whose creation, rename
 * or removal was followed by an fsync of the directory, each with the content its file had at its
 * last fsync/fdatasync. STORE (same file system as DURABLE) holds one file per inode with that
 * durable content; names in DURABLE are hard links to them, so an fsync of a file renamed but not
 * yet made durable under its new name updates the content under its old, durable name.
 *
 * Semantics modelled (a power cut with no barrier lost, as POSIX promises and no more):
 * - write/truncate change only the live (in-memory) content; fsync or fdatasync of the file makes
 *   its whole current content and size durable (for whatever durable names it has, or later gets);
 * - create/rename/unlink change only the live directory; fsync of the directory makes the live set
 *   of names durable (a name whose file was never fsynced becomes durable with empty content).
 * On start, STORE is emptied and DURABLE read back: the mount shows the durable state.
 * Only regular files in the root directory; no subdirectories, links or special files.
 */
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct inode {
  unsigned long id;
  char *data;
  size_t size, capacity;
  /* Live bytes not yet durable: [dirty_from, dirty_to); the size is written on every fsync. */
  size_t dirty_from, dirty_to;
  int has_store; /* STORE/<id> exists */
  int linked;    /* has a live name */
  int open_count;
  mode_t mode;
  struct timespec mtime;
};

struct entry {
  char *name;
  struct inode *inode;
};

static const char *durable_dir, *store_dir;
static struct entry *entries;
static size_t entry_count, entry_capacity;
static unsigned long next_id = 1;

static void store_path(char *out, const struct inode *inode) {
  snprintf(out, PATH_MAX, "%s/%lu", store_dir, inode->id);
}

static struct inode *new_inode(mode_t mode) {
  struct inode *inode = calloc(1, sizeof *inode);
  if (!inode) return NULL;
  inode->id = next_id++;
  inode->mode = mode & 07777;
  clock_gettime(CLOCK_REALTIME, &inode->mtime);
  return inode;
}

static void release_if_unused(struct inode *inode) {
  if (inode->linked || inode->open_count > 0) return;
  free(inode->data);
  free(inode);
}

/* "/name" -> index into entries, or -1. */
static long find_entry(const char *path) {
  if (!path || path[0] != '/' || strchr(path + 1, '/')) return -1;
  for (size_t i = 0; i < entry_count; i++)
    if (strcmp(entries[i].name, path + 1) == 0) return (long)i;
  return -1;
}

static int valid_new_name(const char *path) {
  size_t length = strlen(path);
  return path[0] == '/' && length > 1 && length < 256 && !strchr(path + 1, '/');
}

static int add_entry(const char *name, struct inode *inode) {
  if (entry_count == entry_capacity) {
    size_t capacity = entry_capacity ? entry_capacity * 2 : 64;
    struct entry *grown = realloc(entries, capacity * sizeof *grown);
    if (!grown) return -ENOMEM;
    entries = grown;
    entry_capacity = capacity;
  }
  entries[entry_count].name = strdup(name);
  if (!entries[entry_count].name) return -ENOMEM;
  entries[entry_count].inode = inode;
  inode->linked = 1;
  entry_count++;
  return 0;
}

static void remove_entry(long index) {
  struct inode *inode = entries[index].inode;
  free(entries[index].name);
  entries[index] = entries[--entry_count];
  inode->linked = 0;
  release_if_unused(inode);
}

static struct inode *inode_of(const char *path, struct fuse_file_info *fi) {
  if (fi && fi->fh) return (struct inode *)(uintptr_t)fi->fh;
  long index = find_entry(path);
  return index < 0 ? NULL : entries[index].inode;
}

static void mark_dirty(struct inode *inode, size_t from, size_t to) {
  if (inode->dirty_from == inode->dirty_to) {
    inode->dirty_from = from;
    inode->dirty_to = to;
    return;
  }
  if (from < inode->dirty_from) inode->dirty_from = from;
  if (to > inode->dirty_to) inode->dirty_to = to;
}

static int resize(struct inode *inode, size_t size) {
  if (size > inode->capacity) {
    size_t capacity = inode->capacity ? inode->capacity : 65536;
    while (capacity < size) capacity *= 2;
    char *grown = realloc(inode->data, capacity);
    if (!grown) return -ENOMEM;
    inode->data = grown;
    inode->capacity = capacity;
  }
  if (size > inode->size) {
    memset(inode->data + inode->size, 0, size - inode->size);
    mark_dirty(inode, inode->size, size);
  }
  inode->size = size;
  clock_gettime(CLOCK_REALTIME, &inode->mtime);
  return 0;
}

/* Makes the inode's live content its durable content. */
static int make_content_durable(struct inode *inode) {
  char path[PATH_MAX];
  store_path(path, inode);
  int fd = open(path, O_WRONLY | O_CREAT, 0600);
  if (fd < 0) return -errno;
  if (!inode->has_store) {
    inode->has_store = 1;
    inode->dirty_from = 0;
    inode->dirty_to = inode->size;
  }
  size_t to = inode->dirty_to < inode->size ? inode->dirty_to : inode->size;
  int result = 0;
  if (ftruncate(fd, (off_t)inode->size) != 0) result = -errno;
  for (size_t at = inode->dirty_from; result == 0 && at < to;) {
    ssize_t written = pwrite(fd, inode->data + at, to - at, (off_t)at);
    if (written <= 0) result = written < 0 ? -errno : -EIO;
    else at += (size_t)written;
  }
  close(fd);
  if (result == 0) inode->dirty_from = inode->dirty_to = 0;
  return result;
}

/* Makes the live set of names the durable one. */
static int make_directory_durable(void) {
  char source[PATH_MAX], temp[PATH_MAX], target[PATH_MAX];
  snprintf(temp, sizeof temp, "%s/link.tmp", store_dir);
  for (size_t i = 0; i < entry_count; i++) {
    struct inode *inode = entries[i].inode;
    if (!inode->has_store) {
      /* Durable with no content: an fsync later writes all of it. */
      store_path(source, inode);
      int fd = open(source, O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (fd < 0) return -errno;
      close(fd);
      inode->has_store = 1;
      inode->dirty_from = 0;
      inode->dirty_to = inode->size;
    }
    store_path(source, inode);
    snprintf(target, sizeof target, "%s/%s", durable_dir, entries[i].name);
    unlink(temp);
    if (link(source, temp) != 0 || rename(temp, target) != 0) return -errno;
    unlink(temp); /* still there when target already was this inode */
  }
  DIR *dir = opendir(durable_dir);
  if (!dir) return -errno;
  struct dirent *d;
  char path[PATH_MAX + 1];
  while ((d = readdir(dir))) {
    if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0) continue;
    snprintf(path, sizeof path, "/%s", d->d_name);
    if (find_entry(path) < 0) {
      snprintf(target, sizeof target, "%s/%s", durable_dir, d->d_name);
      unlink(target);
    }
  }
  closedir(dir);
  return 0;
}

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
  memset(st, 0, sizeof *st);
  st->st_uid = getuid();
  st->st_gid = getgid();
  if (path && strcmp(path, "/") == 0) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
    return 0;
  }
  struct inode *inode = inode_of(path, fi);
  if (!inode) return -ENOENT;
  st->st_mode = S_IFREG | inode->mode;
  st->st_nlink = inode->linked;
  st->st_size = (off_t)inode->size;
  st->st_blocks = (blkcnt_t)((inode->size + 511) / 512);
  st->st_mtim = st->st_ctim = st->st_atim = inode->mtime;
  return 0;
}

static int fs_readdir(const char *path, void *buffer, fuse_fill_dir_t fill, off_t offset,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags) {
  (void)path, (void)offset, (void)fi, (void)flags; /* the root is the only directory */
  fill(buffer, ".", NULL, 0, 0);
  fill(buffer, "..", NULL, 0, 0);
  for (size_t i = 0; i < entry_count; i++) fill(buffer, entries[i].name, NULL, 0, 0);
  return 0;
}

static int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi) {
  if (find_entry(path) >= 0) return -EEXIST;
  if (!valid_new_name(path)) return -EINVAL;
  struct inode *inode = new_inode(mode);
  if (!inode) return -ENOMEM;
  int result = add_entry(path + 1, inode);
  if (result != 0) {
    free(inode);
    return result;
  }
  inode->open_count++;
  fi->fh = (uintptr_t)inode;
  fi->direct_io = 1;
  return 0;
}

static int fs_open(const char *path, struct fuse_file_info *fi) {
  long index = find_entry(path);
  if (index < 0) return -ENOENT;
  struct inode *inode = entries[index].inode;
  if (fi->flags & O_TRUNC) resize(inode, 0);
  inode->open_count++;
  fi->fh = (uintptr_t)inode;
  fi->direct_io = 1;
  return 0;
}

static int fs_release(const char *path, struct fuse_file_info *fi) {
  (void)path;
  struct inode *inode = (struct inode *)(uintptr_t)fi->fh;
  inode->open_count--;
  release_if_unused(inode);
  return 0;
}

static int fs_read(const char *path, char *buffer, size_t size, off_t offset, struct fuse_file_info *fi) {
  struct inode *inode = inode_of(path, fi);
  if (!inode) return -ENOENT;
  if ((size_t)offset >= inode->size) return 0;
  if (size > inode->size - (size_t)offset) size = inode->size - (size_t)offset;
  memcpy(buffer, inode->data + offset, size);
  return (int)size;
}

static int fs_write(const char *path, const char *buffer, size_t size, off_t offset,
                    struct fuse_file_info *fi) {
  struct inode *inode = inode_of(path, fi);
  if (!inode) return -ENOENT;
  size_t end = (size_t)offset + size;
  if (end > inode->size) {
    int result = resize(inode, end);
    if (result != 0) return result;
  }
  memcpy(inode->data + offset, buffer, size);
  mark_dirty(inode, (size_t)offset, end);
  clock_gettime(CLOCK_REALTIME, &inode->mtime);
  return (int)size;
}

static int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi) {
  struct inode *inode = inode_of(path, fi);
  if (!inode) return -ENOENT;
  return resize(inode, (size_t)size);
}

static int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi) {
  (void)datasync; /* fdatasync also makes the size durable, as it must for appended data */
  struct inode *inode = inode_of(path, fi);
  if (!inode) return -ENOENT;
  return make_content_durable(inode);
}

static int fs_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi) {
  (void)path, (void)datasync, (void)fi;
  return make_directory_durable();
}

static int fs_unlink(const char *path) {
  long index = find_entry(path);
  if (index < 0) return -ENOENT;
  remove_entry(index);
  return 0;
}

static int fs_rename(const char *from, const char *to, unsigned int flags) {
  if (flags & ~RENAME_NOREPLACE) return -EINVAL;
  long source = find_entry(from);
  if (source < 0) return -ENOENT;
  if (!valid_new_name(to)) return -EINVAL;
  long target = find_entry(to);
  if (target == source) return 0;
  if (target >= 0) {
    if (flags & RENAME_NOREPLACE) return -EEXIST;
    remove_entry(target); /* moves the last entry into slot `target` */
    source = find_entry(from);
  }
  char *name = strdup(to + 1);
  if (!name) return -ENOMEM;
  free(entries[source].name);
  entries[source].name = name;
  return 0;
}

static int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi) {
  struct inode *inode = inode_of(path, fi);
  if (!inode) return path && strcmp(path, "/") == 0 ? 0 : -ENOENT;
  inode->mode = mode & 07777;
  return 0;
}

static int fs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi) {
  (void)tv;
  return inode_of(path, fi) || (path && strcmp(path, "/") == 0) ? 0 : -ENOENT;
}

static int fs_statfs(const char *path, struct statvfs *st) {
  (void)path;
  memset(st, 0, sizeof *st);
  st->f_bsize = st->f_frsize = 4096;
  st->f_blocks = st->f_bfree = st->f_bavail = 1UL << 24;
  st->f_files = st->f_ffree = 1UL << 20;
  st->f_namemax = 255;
  return 0;
}

static int refuse(void) { return -EPERM; }
static int fs_mkdir(const char *path, mode_t mode) { (void)path, (void)mode; return refuse(); }
static int fs_link(const char *from, const char *to) { (void)from, (void)to; return refuse(); }
static int fs_symlink(const char *from, const char *to) { (void)from, (void)to; return refuse(); }

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg) {
  (void)conn;
  /* Every operation reaches this process: no kernel caching of names, attributes or data. */
  cfg->entry_timeout = cfg->attr_timeout = cfg->negative_timeout = 0;
  cfg->direct_io = 1;
  cfg->hard_remove = 1;
  cfg->nullpath_ok = 1;
  return NULL;
}

static const struct fuse_operations operations = {
    .init = fs_init,
    .getattr = fs_getattr,
    .readdir = fs_readdir,
    .create = fs_create,
    .open = fs_open,
    .release = fs_release,
    .read = fs_read,
    .write = fs_write,
    .truncate = fs_truncate,
    .fsync = fs_fsync,
    .fsyncdir = fs_fsyncdir,
    .unlink = fs_unlink,
    .rename = fs_rename,
    .chmod = fs_chmod,
    .utimens = fs_utimens,
    .statfs = fs_statfs,
    .mkdir = fs_mkdir,
    .link = fs_link,
    .symlink = fs_symlink,
};

/* Empties STORE and loads DURABLE: each durable name becomes a live file with its durable content. */
static int load_durable_state(void) {
  DIR *dir = opendir(store_dir);
  if (!dir) return perror(store_dir), -1;
  struct dirent *d;
  char path[PATH_MAX * 2];
  while ((d = readdir(dir)))
    if (strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0) {
      snprintf(path, sizeof path, "%s/%s", store_dir, d->d_name);
      unlink(path);
    }
  closedir(dir);
  if (!(dir = opendir(durable_dir))) return perror(durable_dir), -1;
  while ((d = readdir(dir))) {
    if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0) continue;
    snprintf(path, sizeof path, "%s/%s", durable_dir, d->d_name);
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
      fprintf(stderr, "power-cut-fs: %s is not a regular file\n", path);
      return -1;
    }
    struct inode *inode = new_inode(st.st_mode);
    int fd = open(path, O_RDONLY);
    if (!inode || fd < 0 || resize(inode, (size_t)st.st_size) != 0) return perror(path), -1;
    for (size_t at = 0; at < inode->size;) {
      ssize_t got = pread(fd, inode->data + at, inode->size - at, (off_t)at);
      if (got <= 0) return perror(path), -1;
      at += (size_t)got;
    }
    close(fd);
    inode->dirty_from = inode->dirty_to = 0;
    inode->mtime = st.st_mtim;
    char stored[PATH_MAX];
    store_path(stored, inode);
    if (link(path, stored) != 0) return perror(stored), -1;
    inode->has_store = 1;
    if (add_entry(d->d_name, inode) != 0) return -1;
  }
  closedir(dir);
  return 0;
}

int main(int argc, char *argv[]) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s DURABLE STORE MOUNTPOINT\n", argv[0]);
    return 2;
  }
  /* Absolute: fuse_main changes the working directory. */
  durable_dir = realpath(argv[1], NULL);
  store_dir = realpath(argv[2], NULL);
  if (!durable_dir || !store_dir) return perror("realpath"), 1;
  if (load_durable_state() != 0) return 1;
  /* Foreground (the test kills this very process) and single-threaded (no locking needed). */
  char *fuse_argv[] = {argv[0], "-f", "-s", "-o", "fsname=power-cut-fs,subtype=power-cut-fs", argv[3], NULL};
  return fuse_main(6, fuse_argv, &operations, NULL);
}
