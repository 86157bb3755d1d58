/* A C program for the separate-debug-file tests: built with
 * gcc -g -O2 -Wl,--build-id, its debug information moved to a file of its
 * own with objcopy --only-keep-debug, then stripped and linked to that file
 * with objcopy --add-gnu-debuglink. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node {
	struct node *next;
	int key;
	char name[16];
};

static inline unsigned hash(const char *s) {
	unsigned h = 5381;
	while (*s)
		h = h * 33 + (unsigned char)*s++;
	return h;
}

static struct node *push(struct node *head, int key) {
	struct node *n = malloc(sizeof *n);
	if (!n)
		abort();
	n->next = head;
	n->key = key;
	snprintf(n->name, sizeof n->name, "n%d", key);
	return n;
}

static int count(const struct node *n) {
	int c = 0;
	for (; n; n = n->next)
		c += (hash(n->name) & 1) + 1;
	return c;
}

int checksum(const int *v, int n) {
	int s = 0;
	for (int i = 0; i < n; i++)
		s = s * 31 + v[i];
	return s;
}

int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : 10;
	struct node *head = NULL;
	for (int i = 0; i < n; i++)
		head = push(head, i);
	int v[4] = {count(head), n, (int)strlen(argv[0]), 7};
	printf("%d\n", checksum(v, 4));
	while (head) {
		struct node *next = head->next;
		free(head);
		head = next;
	}
	return 0;
}
