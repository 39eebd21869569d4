/* The file named -fplugin=./p.c: plain C when read as a file. */
int not_an_option;
