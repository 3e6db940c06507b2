/*
 * config.h — experiment configs (the .cfg files in experiments/) for `glocal run`.
 *
 * Files use libconfig's syntax (https://hyperrealm.github.io/libconfig/):
 * `key = value;`, groups in braces, lists in parentheses, arrays in brackets,
 * `#` comments. Every key is checked against the schema below: an unknown key,
 * a value of the wrong type or out of range is an error naming file:line.
 *
 *   name = "synthetic";
 *   dataset    = { kind = "synthetic"; root = ""; lists = ""; split = 1; labels = 11;
 *                  classes = 8; clips_per_class = 12; frames = 20; size = "64x64";
 *                  camera = "strong"; textures = ""; seed = 1; };
 *   motion     = { size = "64x64"; minutes = 4.0; steps = 0; batch = 16; lr = 1e-3; seed = 1;
 *                  lme_start = 1000; mask_start = 1500; };
 *   extract    = { size = "64x64"; stride = 1; };
 *   classifier = { arch = "resnet10"; width = 16; flip = false; decode = "64x64";
 *                  test_segments = 5; epochs = 8; batch = 16; lr = 0.01; segments = 3;
 *                  stack = 5; size = "56x56"; optimizer = "sgd"; weight_decay = 5e-4;
 *                  label_smoothing = 0.1; dropout = 0.5; test_crops = 1; seed = 1; };
 *   sources = [ "rgb", "tvl1", "tvl1-minus-homography", "glocal-local", "glocal-mixed" ];
 *             # any of rgb, rgbdiff, tvl1, tvl1-minus-homography, dis, dis-minus-homography,
 *             # glocal-local, glocal-residual, glocal-global, glocal-mixed (all but rgb are
 *             # glocal extract methods; dis* need extract.size >= 16x16)
 *   fusions = ( { name = "rgb+glocal-local"; streams = [ "rgb", "glocal-local" ];
 *                 weights = [ 1.0, 1.5 ]; } );
 *   ranks = 0;      # processes of the GLOCAL training stage (glocal launch -n ranks,
 *                   # data-parallel); motion.batch must be a multiple of it. 0 = one
 *                   # per core (CPU) or per GPU (cuda), the largest count dividing the batch
 *   threads = 0;    # libtorch threads per stage process (0: 1; the global
 *                   # --threads overrides); independent stages run cores/threads at a time
 */
#ifndef GLOCAL_EXPERIMENTS_CONFIG_H
#define GLOCAL_EXPERIMENTS_CONFIG_H

#include <stddef.h>

#define EXP_MAX_SOURCES 8
#define EXP_MAX_FUSIONS 8

typedef struct {
    char name[64];
    int nstreams;
    char streams[EXP_MAX_SOURCES][32];
    double weights[EXP_MAX_SOURCES];
} exp_fusion;

typedef struct {
    char path[1024];      /* the config file */
    char name[64];
    /* dataset */
    char kind[16];        /* synthetic | ucf101 | ncaa */
    char root[1024];
    char lists[1024];     /* folder of classInd.txt and the split lists; "": looked for
                             (dataset_lists_locate, datasets/ucf101.h) */
    int split;
    int labels;           /* ncaa: 11 or 6 */
    int classes, clips_per_class, frames;
    int width, height;    /* synthetic frame size */
    char camera[16];
    char textures[1024];
    int dataset_seed;
    /* motion (GLOCAL self-supervised training) */
    int motion_w, motion_h;
    double motion_minutes;
    long motion_steps;
    int motion_batch;
    double motion_lr;
    int motion_seed;
    long motion_lme_start;   /* step from which LME and the mask train */
    long motion_mask_start;  /* step from which the mask weights the global loss */
    char motion_teacher[8];  /* train-motion --teacher: tvl1 (default), dis or none */
    /* extraction */
    int extract_w, extract_h, extract_stride;
    /* classifier */
    char arch[16];        /* tiny small resnet10 resnet18 resnet34 resnet50 */
    int width_mult;       /* channels of the first stage (0: the arch's) */
    int flip;             /* horizontal flips in training (off when direction is the class) */
    int decode_w, decode_h; /* rgb: decode size before cropping (0: dataset size) */
    int test_segments;
    int epochs, batch, segments, stack, test_crops;
    int crop_w, crop_h;
    double lr, weight_decay, label_smoothing, dropout;
    char optimizer[16];
    int classifier_seed;
    /* what to compare */
    int nsources;
    char sources[EXP_MAX_SOURCES][32];
    int nfusions;
    exp_fusion fusions[EXP_MAX_FUSIONS];
    int ranks, threads;
} exp_config;

/* Defaults for everything (the synthetic experiment). */
void exp_config_default(exp_config *c);
/* Reads and validates path over the defaults. GL_EINVAL/GL_EFORMAT with
 * "file:line: ..." on any problem. */
int exp_config_load(exp_config *c, const char *path);
/* Canonical text of the config (every field, fixed order): what stage keys hash. */
int exp_config_canonical(const exp_config *c, char *buf, size_t n);
/* 1 if s is a known motion source name. */
int exp_source_known(const char *s);

#endif
