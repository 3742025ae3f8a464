module bwrapd.dev/client

go 1.19
