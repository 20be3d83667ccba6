// layoutrt CLI entry point (subcommands are added in their own files).
#include <cstdio>
int main() { std::puts("layoutrt"); return 0; }
