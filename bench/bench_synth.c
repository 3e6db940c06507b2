/* bench_synth — how fast the synthetic benchmark renders and writes.
 *   bench_synth [--textures DIR] [--clips N] [--threads N]
 * Prints: render frames/s (one thread, in memory, ground truth included) and
 * the wall time of writing a default dataset of N clips per class to a temp
 * folder (videos + HDF5 + lists, all threads). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datasets/synth.h"

int main(int argc, char **argv)
{
    synth_config cfg = synth_config_default();
    int clips = 12;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--textures")) cfg.textures = argv[i + 1];
        else if (!strcmp(argv[i], "--clips")) clips = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) gl_set_num_threads(atoi(argv[i + 1]));
        else {
            fprintf(stderr, "bench_synth: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    synth *s = NULL;
    if (synth_new(&cfg, &s) < 0) {
        fprintf(stderr, "bench_synth: %s\n", gl_last_error());
        return 1;
    }
    double t0 = gl_now();
    long frames = 0;
    for (int i = 0; i < 2 * cfg.classes; i++) {
        synth_clip *c = NULL;
        if (synth_clip_render(s, i % cfg.classes, (uint64_t)i, (uint64_t)i + 99, 0, &c) < 0) {
            fprintf(stderr, "bench_synth: %s\n", gl_last_error());
            return 1;
        }
        frames += c->frames;
        synth_clip_free(&c);
    }
    double tr = gl_now() - t0;
    printf("synth render %dx%d ss%d %s: %.1f frames/s (1 thread)\n", cfg.width, cfg.height,
           cfg.supersample, cfg.textures ? "photos" : "procedural", frames / tr);
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/bench_synth_%ld", (long)getpid());
    synth_dataset_options opt = { .out_dir = dir, .clips_per_class = clips };
    t0 = gl_now();
    int rc = synth_dataset_write(s, &opt);
    double tw = gl_now() - t0;
    synth_free(&s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_synth: could not remove %s\n", dir);
    if (rc < 0) {
        fprintf(stderr, "bench_synth: %s\n", gl_last_error());
        return 1;
    }
    printf("synth dataset %d classes x %d clips x %d frames: %.2f s (%d threads)\n", cfg.classes,
           clips, cfg.frames, tw, gl_num_threads());
    return 0;
}
