/* QEMU TCG plugin (plugin API v1, as in Debian 12's QEMU 7.2): for every translated block, its
   guest address, instruction count, fmla count and how often it ran, written to a file at exit
   ("out=PATH", default tbcount.txt) as lines "vaddr_hex n_insns n_fmla execs". Mapping those
   addresses to symbols (tools/arm/insn_profile.py) gives executed instructions per function.
   Build: gcc -O2 -shared -fPIC -o libtbcount.so qemu-tbcount.c
   Use:   qemu-aarch64 -plugin ./libtbcount.so,out=tb.txt -d plugin ./prog */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The few declarations of qemu-plugin.h this needs (Debian ships no QEMU plugin headers). */
typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef struct {
  const char* target_name;
  struct {
    int min, cur;
  } version;
  bool system_emulation;
  union {
    struct {
      int smp_vcpus, max_vcpus;
    } system;
  };
} qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*tb_trans_cb_t)(qemu_plugin_id_t, struct qemu_plugin_tb*);
typedef void (*udata_cb_t)(qemu_plugin_id_t, void*);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, tb_trans_cb_t);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb*, enum qemu_plugin_op, void*,
                                              uint64_t);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb*);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb*);
struct qemu_plugin_insn* qemu_plugin_tb_get_insn(const struct qemu_plugin_tb*, size_t);
char* qemu_plugin_insn_disas(const struct qemu_plugin_insn*);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, udata_cb_t, void*);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

typedef struct {
  uint64_t vaddr, insns, fmla, execs;
} block;

/* One record per translation (a block translated twice gets two; the reader sums by address).
   Translation is single-threaded for the single-vCPU user-mode runs this is meant for. */
static block** blocks;
static size_t n_blocks, cap_blocks;
static const char* out_path = "tbcount.txt";

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb* tb) {
  (void)id;
  block* b = calloc(1, sizeof *b);
  if (b == NULL) abort();
  b->vaddr = qemu_plugin_tb_vaddr(tb);
  b->insns = qemu_plugin_tb_n_insns(tb);
  for (size_t i = 0; i < b->insns; i++) {
    char* d = qemu_plugin_insn_disas(qemu_plugin_tb_get_insn(tb, i));
    if (d != NULL && strncmp(d, "fmla", 4) == 0) b->fmla++;
    free(d);
  }
  if (n_blocks == cap_blocks) {
    cap_blocks = cap_blocks ? 2 * cap_blocks : 4096;
    blocks = realloc(blocks, cap_blocks * sizeof *blocks);
    if (blocks == NULL) abort();
  }
  blocks[n_blocks++] = b;
  qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->execs, 1);
}

static void at_exit(qemu_plugin_id_t id, void* unused) {
  (void)id;
  (void)unused;
  FILE* f = fopen(out_path, "w");
  if (f == NULL) return;
  for (size_t i = 0; i < n_blocks; i++)
    if (blocks[i]->execs != 0)
      fprintf(f, "%llx %llu %llu %llu\n", (unsigned long long)blocks[i]->vaddr,
              (unsigned long long)blocks[i]->insns, (unsigned long long)blocks[i]->fmla,
              (unsigned long long)blocks[i]->execs);
  fclose(f);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                               const qemu_info_t* info, int argc,
                                                               char** argv) {
  (void)info;
  for (int i = 0; i < argc; i++)
    if (strncmp(argv[i], "out=", 4) == 0) out_path = argv[i] + 4;
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  qemu_plugin_register_atexit_cb(id, at_exit, NULL);
  return 0;
}
