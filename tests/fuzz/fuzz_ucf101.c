/* fuzz_ucf101.c — the UCF-101 split lists (datasets/ucf101.h). Input: the
 * lists of split 1 separated by form feeds (fuzz_write_lists). */
#include "tests/fuzz/fuzz_util.h"

#include "datasets/ucf101.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char root[512];
    fuzz_write_lists(fuzz_dir(), data, size);
    /* The clips are looked up (and not found) under an empty folder. */
    snprintf(root, sizeof root, "%s/root", fuzz_dir());
    gl_mkdirs(root);
    dataset_index *idx = NULL;
    if (dataset_index_load(&idx, root, fuzz_dir(), 1) == 0) {
        char buf[512];
        dataset_index_summary(idx, 3, buf, sizeof buf);
        for (int i = 0; i < idx->num_classes; i++)
            if (dataset_index_find_class(idx, idx->class_names[i]) < 0) abort();
    }
    dataset_index_free(&idx);
    return 0;
}
