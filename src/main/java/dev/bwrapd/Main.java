package dev.bwrapd;

import io.quarkus.runtime.QuarkusApplication;
import io.quarkus.runtime.annotations.QuarkusMain;

@QuarkusMain
public class Main implements QuarkusApplication {
    @Override
    public int run(String... args) {
        System.err.println("hello " + Runtime.version());
        return 0;
    }
}
