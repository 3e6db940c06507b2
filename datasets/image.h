/*
 * image.h — loading still images (PNG, JPEG, binary PPM/PGM/PAM, BMP) into
 * packed 8-bit RGB24 or gray buffers, and saving PNG.
 *
 * Loading goes through FFmpeg's image decoders (libavcodec png, mjpeg, pnm,
 * bmp), chosen from the file's first bytes, never its name; colour conversion
 * is libswscale's (BT.601 for JPEG's YCbCr, exact for RGB and palette
 * images). Alpha is dropped (not composited); 16-bit images are reduced to 8
 * bits; RGB -> gray uses swscale's BT.601 luma. Saving uses libpng directly
 * (8-bit, no interlace, default compression) and is atomic: the file is
 * written to a temporary name beside the target and renamed into place.
 *
 * FlyingChairs (Dosovitskiy et al. 2015) frames are binary P6 PPM, 512x384.
 *
 * Ownership: image_load fills a caller-owned `image` whose `data` it
 * allocates with gl_malloc; image_release frees it and zeroes the struct.
 *
 * Errors: GL_EIO (missing, unreadable, unwritable), GL_EFORMAT (not an image
 * we know, or a corrupt one), GL_EINVAL (bad arguments); the message names
 * the file and what was expected.
 */
#ifndef GLOCAL_DATASETS_IMAGE_H
#define GLOCAL_DATASETS_IMAGE_H

#include <stdint.h>

#include "nn/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int width, height;
    int channels;      /* 3 = RGB24, 1 = gray */
    uint8_t *data;     /* height rows of width*channels bytes, top row first (HWC) */
} image;

/* channels: 3 (RGB24) or 1 (gray). */
int image_load(image *out, const char *path, int channels);
/* The same from bytes in memory; `name` is used in messages only. */
int image_load_memory(image *out, const void *bytes, size_t size, const char *name, int channels);
void image_release(image *img);

/* Saves width*height*channels bytes (channels 1, 3 or 4) as an 8-bit PNG. */
int image_save_png(const char *path, const uint8_t *data, int width, int height, int channels);

#ifdef __cplusplus
}
#endif
#endif
