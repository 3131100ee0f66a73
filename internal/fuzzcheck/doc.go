// Package fuzzcheck holds a test that every fuzz target in the module has a
// committed seed corpus under <package dir>/testdata/fuzz/<FuzzName>/.
//
// Write missing corpora with scripts/fuzz-seeds; run the fuzzing campaign
// with make fuzz (scripts/fuzz).
package fuzzcheck
