/* printf of doubles: musl's printf uses long double (x87) and SSE. */
#include <stdio.h>
int main(void)
{
    double x = 1.0 / 3.0;
    printf("%f %.10g %e %g %.3f\n", x, 2.5e-7, 12345.678, 100.0, -0.0005);
    return 0;
}
