/*
 * udhn.h — the CA-UDHN homography benchmark ("DHE" protocol; Zhang et al.,
 * "Content-Aware Unsupervised Deep Homography Estimation", ECCV 2020; lists
 * and point files of JirongZhang/DeepHomography): its pair lists, its
 * labelled point pairs, its five scene categories and its per-pair error.
 *
 * Format (facts of the reference test code; this is our own reading of them):
 *   - A list line is `VIDEO/IMGA VIDEO/IMGB`, e.g.
 *     `00000100/00000100_10036.jpgLM 00000100/00000100_10043.jpgLM`. A trailing
 *     `LM` on a name is a marker, not part of the file name: the image is
 *     Test/00000100/00000100_10036.jpg. LF or CRLF ends, a missing final
 *     newline and blank lines are accepted.
 *   - The points of a pair are Coordinate-v2/<KEY>.npy with KEY = the two
 *     base names as written in the list, LM kept, joined by '_'
 *     (`00000100_10036.jpgLM_00000100_10043.jpgLM`): 6 point pairs
 *     [[x, y] in A, [x, y] in B] in pixels of the 640x360 images (images of
 *     another size are resized to 640x360 first). scripts/udhn-points converts
 *     the .npy files (numpy pickles) into one text file that udhn_points_read
 *     reads: `KEY xA1 yA1 xB1 yB1 ... xA6 yA6 xB6 yB6` per line, '#' comments.
 *   - Error of a pair for an estimated homography H (3x3 row-major doubles
 *     mapping a pixel of A to B, pixel centres at integers, as motion/flow.h):
 *     the mean over the 6 points of min(|pB - H pA|, |pA - H pB|), because
 *     the annotators did not keep the order of the two points of a pair.
 *   - Categories by the video folder: RE (regular), LT (low texture), LL (low
 *     light), SF (small foreground), LF (large foreground). The benchmark
 *     reports the mean error per category and the mean of the five means.
 *
 * Ownership: udhn_list_read / udhn_points_read fill caller-owned structs whose
 * arrays they allocate (gl_malloc); the matching _free releases them and
 * zeroes the struct (NULL-safe, idempotent). udhn_frame_load allocates *rgb;
 * the caller gl_free()s it.
 *
 * Errors: negative GL_E* codes with a message naming the file and line and
 * what was expected (GL_EIO: missing or unreadable file, GL_EFORMAT: a bad
 * line, GL_ENOTFOUND: no points for a key). Nothing here prints.
 */
#ifndef GLOCAL_DATASETS_UDHN_H
#define GLOCAL_DATASETS_UDHN_H

#include <stdint.h>

#include "nn/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define UDHN_WIDTH 640    /* the benchmark's image size; the points are in its pixels */
#define UDHN_HEIGHT 360
#define UDHN_NPOINTS 6    /* labelled point pairs per image pair */

enum { UDHN_RE = 0, UDHN_LT, UDHN_LL, UDHN_SF, UDHN_LF, UDHN_NCATS, UDHN_NONE = -1 };

/* "RE", "LT", "LL", "SF", "LF" (NULL for anything else). */
const char *udhn_category_name(int category);
/* The category of a video folder name ("0000011", "00000100", ...), or
 * UDHN_NONE when it is in none of the five. Exact match: "11" is not "0000011". */
int udhn_category_of_video(const char *video);

typedef struct {
    char *video;     /* the video folder, e.g. "00000100" */
    char *image_a;   /* "VIDEO/NAME" with any LM marker removed (relative to DIR/Test) */
    char *image_b;
    char *key;       /* point-file key: "<base A>_<base B>" as in the list, LM kept */
    int category;    /* UDHN_RE..UDHN_LF or UDHN_NONE */
    int line;        /* 1-based line in the list file */
} udhn_pair;

typedef struct {
    int n;
    udhn_pair *pairs;
} udhn_list;

/* Parses a list file. Every line must hold two names `VIDEO/NAME` of the same
 * VIDEO; anything else is GL_EFORMAT with "path:line: ...". An empty list
 * (no pairs) is GL_EFORMAT too. */
int udhn_list_read(udhn_list *out, const char *path);
void udhn_list_free(udhn_list *l);

/* The 6 labelled point pairs of one image pair, pixels of the 640x360 images:
 * a[i] = (x, y) of point i as first written, b[i] its partner. */
typedef struct {
    double a[UDHN_NPOINTS][2];
    double b[UDHN_NPOINTS][2];
} udhn_points;

typedef struct {
    int n;
    char **keys;           /* sorted (strcmp) for udhn_points_find */
    udhn_points *points;   /* points[i] belongs to keys[i] */
} udhn_points_table;

/* Reads the text file written by scripts/udhn-points. A missing file is
 * GL_EIO with a message that says to run scripts/udhn-points; a line without
 * a key and 24 finite numbers, or a key given twice, is GL_EFORMAT
 * ("path:line: ..."); so is a file without any points ("path: no points"). */
int udhn_points_read(udhn_points_table *out, const char *path);
/* *out = the points of key (borrowed from t): 0, or GL_ENOTFOUND. */
int udhn_points_find(const udhn_points_table *t, const char *key, const udhn_points **out);
void udhn_points_free(udhn_points_table *t);

/* The benchmark's error of one pair (pixels): mean over the 6 points of
 * min(|b - H a|, |a - H b|). GL_ENUMERIC when H sends a point to infinity
 * (w = 0) or the result is not finite. */
int udhn_pair_error(const double h[9], const udhn_points *p, double *err);

/* Loads an image (datasets/image.h) as 640x360 RGB24, resized bilinearly
 * (half-pixel centres, as OpenCV's INTER_LINEAR that the reference code
 * uses) when it has another size. *rgb: UDHN_WIDTH * UDHN_HEIGHT * 3 bytes,
 * gl_malloc'ed. *orig_w / *orig_h (may be NULL) get the size in the file. */
int udhn_frame_load(const char *path, uint8_t **rgb, int *orig_w, int *orig_h);

/* Bilinear resize of RGB24 (half-pixel centres, edge-clamped); exposed for
 * the command's --work-size. */
int udhn_rgb_resize(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh);

#ifdef __cplusplus
}
#endif
#endif
