/* The ssed PHP extension: publish Server-Sent Events from PHP through libssed. */
#ifndef PHP_SSED_H
#define PHP_SSED_H

extern zend_module_entry ssed_module_entry;
#define phpext_ssed_ptr &ssed_module_entry

#define PHP_SSED_VERSION "0.1.0"

#endif
