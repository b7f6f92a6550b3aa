/* The program of the `static` example: a statically linked binary needs nothing else in the
 * image. Build it beside the recipe with:  cc -static -Os -o recipes/static/hello recipes/static/hello.c */
#include <stdio.h>

int main(int argc, char **argv) {
    printf("hello from a static binary in a kiln image");
    for (int i = 1; i < argc; i++) {
        printf(" %s", argv[i]);
    }
    printf("\n");
    return 0;
}
