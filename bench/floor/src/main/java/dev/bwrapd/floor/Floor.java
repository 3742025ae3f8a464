package dev.bwrapd.floor;

import io.quarkus.runtime.QuarkusApplication;
import io.quarkus.runtime.annotations.QuarkusMain;

import java.io.BufferedReader;
import java.io.InputStreamReader;

/** Answers one line with "ok", then waits for the end of its input (so its memory can be read). */
@QuarkusMain
public class Floor implements QuarkusApplication {
    @Override
    public int run(String... args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        in.readLine();
        System.out.print("ok\n");
        System.out.flush();
        while (in.readLine() != null) {
            // until the end of input
        }
        return 0;
    }
}
