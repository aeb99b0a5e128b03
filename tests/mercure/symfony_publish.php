<?php
// Publishes to a Mercure hub with Symfony's Mercure component, unchanged: its Hub class, its
// Update class and a static token provider. Run by tests/mercure.rs:
//
//   php symfony_publish.php HUB_URL PUBLISHER_JWT BOOKS_ONLY_JWT
//
// Prints one line per update: the id the hub answered, or "refused STATUS".

declare(strict_types=1);

require_once 'Symfony/Component/Mercure/autoload.php';

use Symfony\Component\Mercure\Exception\RuntimeException;
use Symfony\Contracts\HttpClient\Exception\HttpExceptionInterface;
use Symfony\Component\Mercure\Hub;
use Symfony\Component\Mercure\Jwt\StaticTokenProvider;
use Symfony\Component\Mercure\Update;

[, $url, $publisherJwt, $booksOnlyJwt] = $argv;

$hub = new Hub($url, new StaticTokenProvider($publisherJwt));
$booksOnly = new Hub($url, new StaticTokenProvider($booksOnlyJwt));

function publish(Hub $hub, Update $update): void
{
    try {
        echo $hub->publish($update), "\n";
    } catch (RuntimeException $e) {
        $answer = $e->getPrevious();
        if (!$answer instanceof HttpExceptionInterface) {
            throw $e; // Not an answer from the hub: the test fails with the reason.
        }
        echo 'refused ', $answer->getResponse()->getStatusCode(), "\n";
    }
}

// A public update.
publish($hub, new Update('https://example.com/books/1', '{"title":"public"}'));
// A private one.
publish($hub, new Update('https://example.com/books/1', '{"title":"private"}', true));
// One update to several topics.
publish($hub, new Update(['https://example.com/books/2', 'https://example.com/reviews/7'], 'several'));
// A custom id, type and retry.
publish($hub, new Update('https://example.com/books/3', "custom\nlines", false, 'book-3-v2', 'book.updated', 3000));
// A publisher whose token allows books only, to a user.
publish($booksOnly, new Update('https://example.com/users/1', 'not allowed'));
// It may publish to books.
publish($booksOnly, new Update('https://example.com/books/4', 'allowed', true));
// The last one, public, so that a subscriber can tell it has seen everything before it.
publish($hub, new Update('https://example.com/books/9', 'end'));
