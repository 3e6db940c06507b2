// placeholder replaced below
#include <torch/torch.h>
#include "nn/nn.h"
extern "C" {
int nn_runtime_init(int threads, const char *device) { (void)device; at::set_num_threads(threads); return 0; }
void nn_runtime_shutdown(void) {}
}
extern "C" int nn_runtime_get_info(nn_runtime_info *i) { memset(i, 0, sizeof *i); snprintf(i->torch_version, sizeof i->torch_version, "%s", TORCH_VERSION); i->threads = at::get_num_threads(); return 0; }
