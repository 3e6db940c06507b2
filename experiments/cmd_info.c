/* glocal info — what this build runs on. */
#include <H5public.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <stdio.h>

#include "experiments/cli.h"
#include "experiments/commands.h"
#include "nn/nn.h"

GLOCAL_COMMAND(info, "info", "print versions, the BLAS in use, threads and whether CUDA is available")

int cmd_info(int argc, char **argv)
{
    cli_opt opts[] = { CLI_END };
    cli_spec spec = {
        .cmd = "info", .opts = opts,
        .about = "Prints the versions of glocal, libtorch, FFmpeg and HDF5, the BLAS library\n"
                 "libtorch calls at run time, the thread count (set with the global --threads),\n"
                 "and whether CUDA is available.\n",
    };
    int rc = cli_parse(&spec, argc, argv);
    if (rc != CLI_PARSED) return rc;
    nn_runtime_info ri;
    rc = nn_runtime_get_info(&ri);
    if (rc < 0) return cli_fail("info", rc, "cannot query libtorch");
    unsigned maj, min, rel;
    H5get_libversion(&maj, &min, &rel);
    unsigned av = avcodec_version(), af = avformat_version();
    printf("glocal     %s\n", GLOCAL_VERSION);
    printf("libtorch   %s\n", ri.torch_version);
    printf("FFmpeg     %s (libavcodec %u.%u.%u, libavformat %u.%u.%u)\n", av_version_info(),
           av >> 16, (av >> 8) & 255, av & 255, af >> 16, (af >> 8) & 255, af & 255);
    printf("HDF5       %u.%u.%u\n", maj, min, rel);
    printf("BLAS       %s\n", ri.blas);
    printf("oneDNN     %s\n", ri.mkldnn ? "yes" : "no");
    printf("threads    %d (intra-op), %d (inter-op), %d cores\n", ri.threads,
           ri.interop_threads, gl_num_cores());
    printf("CUDA       %s", ri.cuda_available ? "available" : "not available");
    if (ri.cuda_available) printf(" (%d device%s)", ri.cuda_devices, ri.cuda_devices == 1 ? "" : "s");
    printf("\ndevice     %s\n", cli_g.device);
    return CLI_OK;
}
