/*
 * tests/fuzz/fuzz.h: the entry points libFuzzer calls in every harness
 * (docs/fuzzing.md). Declared here so each harness defines them against a
 * prototype.
 */
#ifndef MR_TESTS_FUZZ_H
#define MR_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
